"""Fusion of runs: reciprocal rank fusion and the score-based methods."""
