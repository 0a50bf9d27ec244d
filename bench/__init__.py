"""Benchmarks: plain scripts run with the project venv (see docs/benchmarks.md)."""
