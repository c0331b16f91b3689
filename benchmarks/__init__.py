"""crossjax benchmarks: scripts that print ratios against baselines timed in the same run."""
