"""Stage 1: find a dataset's clips, split them, and decode audio files."""
