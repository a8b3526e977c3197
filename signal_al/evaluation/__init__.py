"""Evaluation: classification metrics, experiment aggregation and plots."""
