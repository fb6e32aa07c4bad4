"""Stage 5: a trained model applied to new audio: files, stored segments, live streams."""
