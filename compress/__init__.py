"""compress-bench: regression benchmarks for model compression."""
