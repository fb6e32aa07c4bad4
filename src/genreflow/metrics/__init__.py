"""Scores shared by training, evaluation and prediction: single-label and multi-label metrics."""
