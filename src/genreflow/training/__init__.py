"""Stage 3: training inputs, the CNN and the classical baseline, the fit loop, checkpoints and export."""
