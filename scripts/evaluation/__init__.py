"""Evaluate's own package: the reviewer's report (:mod:`evaluation.report`).

Shipped with the Evaluate job only (beside ``evaluate.py`` and the shared ``tabular`` package),
so an edit of the report re-keys Evaluate's step and no other job's.
"""
