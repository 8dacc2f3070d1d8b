"""`make bench`: how much the local pipeline costs on top of its jobs, and how it scales.

Not a test: it measures on this machine and writes build/bench/results.json and results.png
(see the Benchmark section of README.md).
"""
