"""Passes over tables: the session, column selection, the baseline scans and the counting pass."""
