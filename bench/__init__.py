"""Benchmarks against the sandbox: `python -m bench` (make bench). Figures go to docs/PERFORMANCE.md."""
