"""What the Snakefile imports from the package (never a stage): output keys and hashes, environment, launchers, SLURM checks."""
