"""Evaluation: metrics with ranx, judged queries, per-query values."""
