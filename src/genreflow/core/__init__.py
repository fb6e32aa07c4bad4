"""Helpers every stage shares: config loading, errors, atomic output, progress, threads."""
