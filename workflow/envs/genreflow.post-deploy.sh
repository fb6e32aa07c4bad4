#!/usr/bin/env bash
# Runs once inside the new conda environment after Snakemake creates it (--use-conda).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
python -m pip install --quiet -c "$repo/requirements/constraints.txt" "${repo}[cpu]"
