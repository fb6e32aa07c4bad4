"""Stage 2: audio -> float16 log-mel segment shards, on 1..N MPI ranks (never imports TensorFlow)."""
