"""Judging: thresholds, the paired statistics, latency ratios, run comparison and proposed bounds."""
