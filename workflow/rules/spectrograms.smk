rule spectrograms:
    """Log-mel spectrograms with N MPI ranks (N >= 2): one timing job per rank count."""
    input:
        manifest=MANIFEST,
        config=FEATURES_CONFIG,
    # Declared files, not directory(): on failure Snakemake deletes only these, so the
    # folder's bad_files.csv stays for the user to read.
    output:
        marker=f"{FEATURES_DIR}/ranks{{ranks}}/features.json",
        timings=f"{FEATURES_DIR}/ranks{{ranks}}/timings.json",
        index=f"{FEATURES_DIR}/ranks{{ranks}}/index.csv",
    log:
        f"{LOG_DIR}/spectrograms/ranks{{ranks}}.log",
    benchmark:
        f"{USAGE_DIR}/spectrograms/ranks{{ranks}}.tsv"
    wildcard_constraints:
        # 1 rank is `spectrograms_single`: the SLURM executor rejects MPI jobs with one task.
        ranks=r"[2-9]|[1-9][0-9]+",
    conda:
        "../envs/genreflow.yaml"
    # Locally a timing job holds every core (timings never overlap); MPICH oversubscribes when
    # N > cores. On SLURM, tasks and cpus_per_task (not threads) size the job.
    threads: lambda wildcards: timing_threads(int(wildcards.ranks) * THREADS_PER_RANK)
    resources:
        **layout(lambda wildcards: int(wildcards.ranks), RANKS_PER_NODE),
        tasks=lambda wildcards: int(wildcards.ranks),
        cpus_per_task=THREADS_PER_RANK,
        mpi=mpi_launcher("ranks"),
        mem_mb_per_cpu=1000,
        slurm_extra=EXCLUSIVE,
    params:
        launch=launch_command,
        out=lambda wildcards, output: os.path.dirname(output.marker),
    shell:
        "{params.launch} genreflow spectrograms"
        " --manifest {input.manifest:q} --out {params.out:q} --config {input.config:q} > {log:q} 2>&1"


rule spectrograms_single:
    """Log-mel spectrograms in one process (the 1-rank timing run, or 1-rank production)."""
    input:
        manifest=MANIFEST,
        config=FEATURES_CONFIG,
    output:
        marker=f"{FEATURES_DIR}/ranks1/features.json",
        timings=f"{FEATURES_DIR}/ranks1/timings.json",
        index=f"{FEATURES_DIR}/ranks1/index.csv",
    log:
        f"{LOG_DIR}/spectrograms/ranks1.log",
    benchmark:
        f"{USAGE_DIR}/spectrograms/ranks1.tsv"
    conda:
        "../envs/genreflow.yaml"
    threads: timing_threads(THREADS_PER_RANK)
    resources:
        cpus_per_task=THREADS_PER_RANK,
        mem_mb=1500,
        slurm_extra=EXCLUSIVE,
    params:
        out=lambda wildcards, output: os.path.dirname(output.marker),
    # Under the SLURM executor this runs inside Snakemake's own `srun -n1` step, whose PMI
    # variables would make the child believe it is an MPI rank (and fail in PMI_Init): drop them
    # so it runs as the plain one-process world it is.
    shell:
        "env -u PMI_FD -u PMI_RANK -u PMI_SIZE -u PMI_JOBID -u PMIX_RANK -u SLURM_STEP_ID"
        " genreflow spectrograms"
        " --manifest {input.manifest:q} --out {params.out:q} --config {input.config:q} > {log:q} 2>&1"


if PRODUCTION_RANKS == "auto":

    rule production_features:
        """The fastest run of the ranks sweep feeds training (preprocess.production_ranks: auto)."""
        input:
            timings=[f"{FEATURES_DIR}/ranks{n}/timings.json" for n in TIMING_RANKS],
            markers=[features_marker(n) for n in TIMING_RANKS],
        output:
            choice=f"{FEATURES_DIR}/production.json",
        log:
            f"{LOG_DIR}/spectrograms/production.log",
        localrule: True
        conda:
            "../envs/genreflow.yaml"
        params:
            link=lambda wildcards, output: output.choice.removesuffix(".json"),
        shell:
            "genreflow choose --timings {input.timings:q} --out {output.choice:q}"
            " --link {params.link:q} > {log:q} 2>&1"


rule spectrograms_weak:
    """Weak scaling: N MPI ranks (N >= 2) convert N x preprocess.weak_scaling clips."""
    input:
        manifest=MANIFEST,
        config=FEATURES_CONFIG,
    output:
        timings=f"{FEATURES_DIR}/weak{{clips}}/ranks{{ranks}}/timings.json",
    log:
        f"{LOG_DIR}/spectrograms/weak{{clips}}-ranks{{ranks}}.log",
    benchmark:
        f"{USAGE_DIR}/spectrograms/weak{{clips}}-ranks{{ranks}}.tsv"
    wildcard_constraints:
        ranks=r"[2-9]|[1-9][0-9]+",
        clips=r"[1-9][0-9]*",
    conda:
        "../envs/genreflow.yaml"
    threads: lambda wildcards: timing_threads(int(wildcards.ranks) * THREADS_PER_RANK)
    resources:
        **layout(lambda wildcards: int(wildcards.ranks), RANKS_PER_NODE),
        tasks=lambda wildcards: int(wildcards.ranks),
        cpus_per_task=THREADS_PER_RANK,
        mpi=mpi_launcher("ranks"),
        mem_mb_per_cpu=1000,
        slurm_extra=EXCLUSIVE,
    params:
        launch=launch_command,
        out=lambda wildcards, output: os.path.dirname(output.timings),
    shell:
        "{params.launch} genreflow spectrograms"
        " --manifest {input.manifest:q} --out {params.out:q} --config {input.config:q}"
        " --weak-clips-per-rank {wildcards.clips} > {log:q} 2>&1"


rule spectrograms_weak_single:
    """Weak scaling's 1-rank point: one process converts preprocess.weak_scaling clips."""
    input:
        manifest=MANIFEST,
        config=FEATURES_CONFIG,
    output:
        timings=f"{FEATURES_DIR}/weak{{clips}}/ranks1/timings.json",
    log:
        f"{LOG_DIR}/spectrograms/weak{{clips}}-ranks1.log",
    benchmark:
        f"{USAGE_DIR}/spectrograms/weak{{clips}}-ranks1.tsv"
    wildcard_constraints:
        clips=r"[1-9][0-9]*",
    conda:
        "../envs/genreflow.yaml"
    threads: timing_threads(THREADS_PER_RANK)
    resources:
        cpus_per_task=THREADS_PER_RANK,
        mem_mb=1500,
        slurm_extra=EXCLUSIVE,
    params:
        out=lambda wildcards, output: os.path.dirname(output.timings),
    # As in spectrograms_single: not an MPI rank under the SLURM executor's own srun step.
    shell:
        "env -u PMI_FD -u PMI_RANK -u PMI_SIZE -u PMI_JOBID -u PMIX_RANK -u SLURM_STEP_ID"
        " genreflow spectrograms"
        " --manifest {input.manifest:q} --out {params.out:q} --config {input.config:q}"
        " --weak-clips-per-rank {wildcards.clips} > {log:q} 2>&1"
