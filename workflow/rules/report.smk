rule report:
    """The speed-up report over this dataset's results: scaling, load balance, accuracy."""
    input:
        stage_targets(),
    output:
        html=report(
            f"{REPORT_DIR}/report.html",
            caption="../report/speedup_report.rst",
            category="Speed-up report",
        ),
        table=report(
            f"{REPORT_DIR}/summary_table.csv",
            caption="../report/summary_table.rst",
            category="Speed-up report",
        ),
        markdown=f"{REPORT_DIR}/report.md",
        summary=f"{REPORT_DIR}/summary.json",
    log:
        f"{LOG_DIR}/report.log",
    benchmark:
        f"{BENCH_DIR}/report.tsv"
    conda:
        "../envs/genreflow.yaml"
    # The report searches the whole dataset folder (it groups runs by their config hash) and
    # skips its own folder. Figures are drawn only when the data allows, so the PNGs are not
    # declared outputs; report.html embeds them.
    params:
        results=lambda wildcards, output: os.path.dirname(
            os.path.dirname(output.summary)
        ),
        out=lambda wildcards, output: os.path.dirname(output.summary),
    shell:
        "genreflow report --results {params.results:q} --out {params.out:q} > {log:q} 2>&1"
