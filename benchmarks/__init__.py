"""The benchmark (``python -m benchmarks.benchmark`` from the repository root)."""
