"""One module per CLI sub-command (see :mod:`genreflow.cli`)."""
