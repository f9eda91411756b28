"""Measurement scripts, run from a checkout (`python -m workers.bench.measure.NAME`): each
says in its docstring what it measures and how. They start servers with the test suite's
fixtures, so they are left out of the wheel (pyproject.toml)."""
