"""What the Snakemake workflow runs in the package: output keys and hashes, environment, SLURM checks."""
