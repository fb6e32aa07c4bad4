rule config_snapshot:
    """The validated config (defaults filled in) that one stage reads with --config.

    Rewritten only when the sections that stage depends on change (see common.smk).
    """
    output:
        snapshot=f"{SNAPSHOT_DIR}/{{name}}.yaml",
    log:
        log=f"{LOG_DIR}/config_snapshot/{{name}}.log",
    benchmark:
        f"{USAGE_DIR}/config_snapshot/{{name}}.tsv"
    wildcard_constraints:
        name="|".join(re.escape(name) for name in SNAPSHOT_DIGESTS),
    localrule: True
    params:
        digest=lambda wildcards: SNAPSHOT_DIGESTS[wildcards.name],
    run:
        write_config_snapshot(path=output.snapshot, log=log.log, digest=params.digest)


if is_demo(config):

    rule demo_data:
        """The synthetic demo dataset in GTZAN layout (when data.root and data.csv are empty)."""
        output:
            directory(DEMO_DIR),
        log:
            f"{LOG_DIR}/demo_data.log",
        benchmark:
            f"{USAGE_DIR}/demo_data.tsv"
        conda:
            "../envs/genreflow.yaml"
        params:
            clips=config["data"]["demo"]["clips_per_genre"],
            seconds=config["data"]["demo"]["seconds"],
            seed=config["data"]["demo"]["seed"],
        shell:
            "genreflow demo-data --out {output:q} --clips-per-genre {params.clips}"
            " --seconds {params.seconds} --seed {params.seed} --no-progress > {log:q} 2>&1"


rule manifest:
    """One row per clip with its label and train/valid/test split."""
    input:
        unpack(data_input),
        config=MANIFEST_CONFIG,
    output:
        csv=MANIFEST,
        json=MANIFEST_JSON,
    log:
        f"{LOG_DIR}/manifest.log",
    benchmark:
        f"{USAGE_DIR}/manifest.tsv"
    conda:
        "../envs/genreflow.yaml"
    params:
        source=manifest_source,
    shell:
        "genreflow manifest {params.source} --out {output.csv:q}"
        " --config {input.config:q} > {log:q} 2>&1"
