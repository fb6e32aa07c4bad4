# genreflow: audio -> log-mel spectrograms (MPI) -> pretrained backbone + head, or a CNN
# trained from scratch (TensorFlow) -> genre.
#
#   snakemake --cores 2                  run locally
#   snakemake --profile slurm            every stage a SLURM job (see slurm/README.md)
#
# The rules only call the `genreflow` command line; the logic lives in the genreflow package.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


# Fills every default from the schema shared with the genreflow package.
validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/spectrograms.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


onstart:
    # Under the SLURM profile: refuse jobs no partition can ever run, before submitting any.
    check_slurm_requests()


rule all:
    default_target: True
    input:
        all_targets(),
    localrule: True
