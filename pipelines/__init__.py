"""Wires the step builders into the pipeline graph and owns the command line."""
