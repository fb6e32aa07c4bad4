"""Stage 4: test-split metrics beside baselines, and their figures."""
