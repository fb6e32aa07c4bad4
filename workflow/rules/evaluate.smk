rule evaluate:
    """Test-split metrics and the confusion matrix of the production model."""
    input:
        model=f"{MODELS_DIR}/model/model.keras",
        meta=f"{MODELS_DIR}/model/genreflow.json",
        features=PRODUCTION_FEATURES,
    output:
        metrics=f"{MODELS_DIR}/eval/metrics.json",
        confusion=report(
            f"{MODELS_DIR}/eval/confusion.png",
            caption="../captions/confusion.rst",
            category="Evaluation",
        ),
    log:
        f"{LOG_DIR}/evaluate.log",
    benchmark:
        f"{USAGE_DIR}/evaluate.tsv"
    conda:
        "../envs/genreflow.yaml"
    threads: PRODUCTION_CORES
    resources:
        mem_mb=2000,
    params:
        features=features_dir,
        model=lambda wildcards, input: os.path.dirname(input.model),
        out=lambda wildcards, output: os.path.dirname(output.metrics),
    shell:
        "genreflow evaluate --model {params.model:q} --features {params.features:q}"
        " --out {params.out:q} --threads {threads} > {log:q} 2>&1"
