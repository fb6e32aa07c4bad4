rule train_sweep:
    """A short training run with N intra-op threads: one per count in train.threads."""
    input:
        features=PRODUCTION_FEATURES,
        config=TRAIN_CONFIG,
    output:
        model=f"{MODELS_DIR}/sweep/threads{{threads}}/model.keras",
        meta=f"{MODELS_DIR}/sweep/threads{{threads}}/genreflow.json",
        history=f"{MODELS_DIR}/sweep/threads{{threads}}/history.json",
        timings=f"{MODELS_DIR}/sweep/threads{{threads}}/timings.json",
    log:
        f"{LOG_DIR}/train_sweep/threads{{threads}}.log",
    benchmark:
        f"{USAGE_DIR}/train_sweep/threads{{threads}}.tsv"
    wildcard_constraints:
        threads=r"[1-9][0-9]*",
    conda:
        "../envs/genreflow.yaml"
    threads: lambda wildcards: timing_threads(int(wildcards.threads))
    resources:
        cpus_per_task=lambda wildcards: int(wildcards.threads),
        mem_mb=3000,
        slurm_extra=EXCLUSIVE,
    params:
        features=features_dir,
        out=lambda wildcards, output: os.path.dirname(output.timings),
        epochs=config["train"]["sweep_epochs"],
    # The sweep times exactly N threads even where Snakemake grants fewer cores.
    shell:
        "genreflow train --features {params.features:q} --out {params.out:q}"
        " --config {input.config:q} --threads {wildcards.threads} --epochs {params.epochs}"
        " --sweep-point > {log:q} 2>&1"


rule train_sweep_workers:
    """A short training run with N >= 2 data-parallel workers: one per count in train.sweep_workers."""
    input:
        features=PRODUCTION_FEATURES,
        config=TRAIN_CONFIG,
    output:
        model=f"{MODELS_DIR}/sweep/workers{{workers}}/model.keras",
        meta=f"{MODELS_DIR}/sweep/workers{{workers}}/genreflow.json",
        history=f"{MODELS_DIR}/sweep/workers{{workers}}/history.json",
        timings=f"{MODELS_DIR}/sweep/workers{{workers}}/timings.json",
    log:
        f"{LOG_DIR}/train_sweep/workers{{workers}}.log",
    benchmark:
        f"{USAGE_DIR}/train_sweep/workers{{workers}}.tsv"
    wildcard_constraints:
        workers=r"[2-9]|[1-9][0-9]+",
    conda:
        "../envs/genreflow.yaml"
    threads: lambda wildcards: timing_threads(int(wildcards.workers) * WORKER_THREADS)
    # On SLURM: one task per worker, started by srun; locally genreflow starts the workers.
    resources:
        **layout(lambda wildcards: int(wildcards.workers), WORKERS_PER_NODE),
        tasks=lambda wildcards: int(wildcards.workers),
        cpus_per_task=WORKER_THREADS,
        mpi=mpi_launcher("workers"),
        mem_mb_per_cpu=3000,
        slurm_extra=EXCLUSIVE,
    params:
        features=features_dir,
        out=lambda wildcards, output: os.path.dirname(output.timings),
        epochs=config["train"]["sweep_epochs"],
        threads=WORKER_THREADS,
        launch=launch_command,
    shell:
        "{params.launch} genreflow train --features {params.features:q} --out {params.out:q}"
        " --config {input.config:q} --threads {params.threads} --workers {wildcards.workers}"
        " --epochs {params.epochs} --sweep-point > {log:q} 2>&1"


# The production model. With train.workers > 1 it is one job of `workers` tasks (the SLURM
# executor wants an MPI-style launcher for that, and rejects one with a single task), so the
# rule comes in two forms.
if TRAIN_WORKERS == 1 or USES_BACKBONE:

    rule train:
        """The production model, trained on the production features (with a backbone: its
        head, fitted on the production embeddings)."""
        input:
            unpack(production_inputs),
        output:
            model=f"{MODELS_DIR}/model/model.keras",
            meta=f"{MODELS_DIR}/model/genreflow.json",
            history=f"{MODELS_DIR}/model/history.json",
            timings=f"{MODELS_DIR}/model/timings.json",
        log:
            f"{LOG_DIR}/train.log",
        benchmark:
            f"{USAGE_DIR}/train.tsv"
        conda:
            "../envs/genreflow.yaml"
        threads: PRODUCTION_CORES
        resources:
            cpus_per_task=PRODUCTION_CORES,
            mem_mb=3000,
            runtime=120,
        params:
            features=features_dir,
            out=lambda wildcards, output: os.path.dirname(output.timings),
            workers=TRAIN_WORKERS,
            threads=production_threads_option,
            embeddings=embeddings_option,
        shell:
            "genreflow train --features {params.features:q} --out {params.out:q}"
            " --config {input.config:q} {params.threads} --workers {params.workers}"
            " {params.embeddings} > {log:q} 2>&1"

else:

    rule train_workers:
        """The production model, trained by train.workers data-parallel workers."""
        input:
            unpack(production_inputs),
        output:
            model=f"{MODELS_DIR}/model/model.keras",
            meta=f"{MODELS_DIR}/model/genreflow.json",
            history=f"{MODELS_DIR}/model/history.json",
            timings=f"{MODELS_DIR}/model/timings.json",
        log:
            f"{LOG_DIR}/train.log",
        benchmark:
            f"{USAGE_DIR}/train.tsv"
        conda:
            "../envs/genreflow.yaml"
        threads: min(TRAIN_WORKERS * PRODUCTION_CORES, TIMING_CORES)
        resources:
            **layout(TRAIN_WORKERS, WORKERS_PER_NODE),
            tasks=TRAIN_WORKERS,
            cpus_per_task=PRODUCTION_CORES,
            mpi=mpi_launcher("workers"),
            mem_mb_per_cpu=3000,
            runtime=120,
        params:
            features=features_dir,
            out=lambda wildcards, output: os.path.dirname(output.timings),
            workers=TRAIN_WORKERS,
            threads=production_threads_option,
            launch=launch_command,
        shell:
            "{params.launch} genreflow train --features {params.features:q}"
            " --out {params.out:q} --config {input.config:q} {params.threads}"
            " --workers {params.workers} > {log:q} 2>&1"


if AUTO_THREADS and not USES_BACKBONE:

    rule production_threads:
        """The fastest run of the thread sweep trains the production model (production_threads: auto)."""
        input:
            timings=[
                f"{MODELS_DIR}/sweep/threads{n}/timings.json"
                for n in config["train"]["threads"]
            ],
        output:
            choice=THREADS_CHOICE,
        log:
            f"{LOG_DIR}/train_sweep/production.log",
        localrule: True
        conda:
            "../envs/genreflow.yaml"
        shell:
            "genreflow choose --timings {input.timings:q} --out {output.choice:q} > {log:q} 2>&1"
