# Report: every metrics file into one leaderboard (CSV, Markdown, HTML).


rule cost:
    input:
        gpu_job_records(),
    output:
        paths.cost(),
    log:
        paths.log("cost", "cost"),
    conda:
        "../../envs/base.yaml"
    params:
        # Which jobs there are, and what each ran for, from the plan (a record's path is never parsed);
        # batch sizes, resources and report keys are left out, so changing them reruns nothing.
        jobs=lambda wildcards: json.dumps(PLAN.jobs_config(), sort_keys=True),
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/gather_cost.py" --config {params.jobs:q} --output {output:q} > {log:q} 2>&1'


rule leaderboard:
    input:
        metrics=metrics_files(),
        cost=paths.cost(),
    output:
        csv=paths.leaderboard("csv"),
        markdown=paths.leaderboard("md"),
        html=paths.leaderboard("html"),
    log:
        paths.log("leaderboard", "leaderboard"),
    conda:
        "../../envs/eval.yaml"
    params:
        primary=config["evaluation"]["primary"],
        labels=leaderboard_labels(),
        datasets=report_datasets(),
        cqadupstack=config["report"]["cqadupstack"],
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/build_leaderboard.py" --primary {params.primary} --csv {output.csv}'
        " --datasets {params.datasets:q} --cqadupstack {params.cqadupstack}"
        " --markdown {output.markdown} --html {output.html} {params.labels} --cost {input.cost:q} {input.metrics:q} > {log:q} 2>&1"


rule report:
    input:
        metrics=metrics_files(),
        provenance=model_provenance_files(),
        published=published_files(),
    output:
        html=paths.report("report.html"),
        markdown=paths.report("report.md"),
        published=paths.report("published_vs_reproduced.csv"),
        significance=paths.report("significance.csv"),
        summary=paths.report("report.json"),
        plots=[paths.plot(plot) for plot in PLOTS],
    log:
        paths.log("report", "report"),
    conda:
        "../../envs/eval.yaml"
    params:
        systems=report_systems(),
        datasets=report_datasets(),
        settings=report_settings(),
        plots_dir=lambda wildcards, output: os.path.dirname(output.plots[0]),
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/build_report.py" --systems {params.systems:q} --datasets {params.datasets:q}'
        " --settings {params.settings:q} --published {input.published:q} --provenance {input.provenance:q}"
        " --html {output.html:q} --markdown {output.markdown:q} --published-csv {output.published:q}"
        " --significance-csv {output.significance:q} --json {output.summary:q} --plots-dir {params.plots_dir:q}"
        " {input.metrics:q} > {log:q} 2>&1"
