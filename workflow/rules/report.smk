rule report:
    """The speed-up report over this dataset's results: scaling, load balance, accuracy."""
    input:
        stage_targets(),
    output:
        html=report(
            f"{REPORT_DIR}/report.html",
            caption="../captions/speedup_report.rst",
            category="Speed-up report",
        ),
        table=report(
            f"{REPORT_DIR}/summary_table.csv",
            caption="../captions/summary_table.rst",
            category="Speed-up report",
        ),
        markdown=f"{REPORT_DIR}/report.md",
        summary=f"{REPORT_DIR}/summary.json",
    log:
        f"{LOG_DIR}/report.log",
    benchmark:
        f"{USAGE_DIR}/report.tsv"
    conda:
        "../envs/genreflow.yaml"
    # The report searches the dataset folder, skipping its own folder and the runs of earlier
    # configurations (--only: this config's features, embeddings and model folders). Figures are drawn only when the data allows, so the PNGs are not
    # declared outputs; report.html embeds them.
    params:
        results=lambda wildcards, output: os.path.dirname(
            os.path.dirname(output.summary)
        ),
        out=lambda wildcards, output: os.path.dirname(output.summary),
        only=CURRENT_FOLDERS,
    shell:
        "genreflow report --results {params.results:q} --out {params.out:q}"
        " --only {params.only:q} > {log:q} 2>&1"
