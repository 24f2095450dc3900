"""Benchmarks and load generators (see docs/benchmarks.md when present)."""
