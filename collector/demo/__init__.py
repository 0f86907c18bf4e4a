"""Demo data: generated traffic (traffic.py) for `collector demo-data`, `serve --demo`
and the benchmarks."""
