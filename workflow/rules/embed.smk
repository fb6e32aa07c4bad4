# Only with a pretrained backbone (train.model.backbone other than none): the backbone's
# forward pass over every train/valid segment, timed at each count of train.threads. Every
# point writes the full embeddings; the fastest feeds the head (or train.production_threads).


rule embed:
    """The backbone over every train/valid segment with N threads: one job per count in train.threads."""
    input:
        features=PRODUCTION_FEATURES,
        config=FEATURES_CONFIG,
    output:
        embeddings=f"{EMBED_DIR}/threads{{threads}}/embeddings.npz",
        timings=f"{EMBED_DIR}/threads{{threads}}/timings.json",
    log:
        f"{LOG_DIR}/embed/threads{{threads}}.log",
    benchmark:
        f"{USAGE_DIR}/embed/threads{{threads}}.tsv"
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
        backbone=BACKBONE,
    shell:
        "genreflow embed --features {params.features:q} --out {params.out:q}"
        " --config {input.config:q} --set train.model.backbone={params.backbone}"
        " --threads {wildcards.threads} > {log:q} 2>&1"


if AUTO_THREADS:

    rule production_embeddings:
        """The fastest embedding job of the sweep feeds the head (production_threads: auto)."""
        input:
            timings=[
                f"{EMBED_DIR}/threads{n}/timings.json"
                for n in config["train"]["threads"]
            ],
        output:
            choice=EMBED_CHOICE,
        log:
            f"{LOG_DIR}/embed/production.log",
        localrule: True
        conda:
            "../envs/genreflow.yaml"
        params:
            link=lambda wildcards, output: output.choice.removesuffix(".json"),
        shell:
            "genreflow choose --timings {input.timings:q} --out {output.choice:q}"
            " --link {params.link:q} > {log:q} 2>&1"
