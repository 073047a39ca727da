# Report: every metrics file into one leaderboard (CSV, Markdown, HTML).


rule cost:
    input:
        INPUTS.gpu_job_records(),
    output:
        report(paths.cost(), caption="../report/cost.rst", category="Cost"),
    log:
        paths.log("cost", "cost"),
    conda:
        "../../envs/base.yaml"
    params:
        # Which jobs there are, and what each ran for, from the plan (a record's path is never parsed);
        # batch sizes, resources and report keys are left out, so changing them reruns nothing.
        jobs=INPUTS.jobs_config(),
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/gather_cost.py" --config {params.jobs:q} --output {output:q} > {log:q} 2>&1'


rule leaderboard:
    input:
        metrics=INPUTS.metrics_files(),
        cost=paths.cost(),
    output:
        csv=report(
            paths.leaderboard("csv"),
            caption="../report/leaderboard_csv.rst",
            category="Leaderboard",
            subcategory="All metrics",
        ),
        markdown=paths.leaderboard("md"),
        html=report(
            paths.leaderboard("html"),
            caption="../report/leaderboard.rst",
            category="Leaderboard",
            subcategory="Table",
        ),
        per_query=report(
            paths.per_query(),
            caption="../report/per_query.rst",
            category="Leaderboard",
            subcategory="Per query",
        ),
    log:
        paths.log("leaderboard", "leaderboard"),
    conda:
        "../../envs/eval.yaml"
    params:
        primary=INPUTS.report_settings()["primary"],
        labels=INPUTS.leaderboard_labels(),
        datasets=INPUTS.report_json("datasets"),
        cqadupstack=INPUTS.report_settings()["cqadupstack"],
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/build_leaderboard.py" --primary {params.primary} --csv {output.csv}'
        " --datasets {params.datasets:q} --cqadupstack {params.cqadupstack}"
        " --markdown {output.markdown} --html {output.html} --per-query {output.per_query:q} {params.labels} --cost {input.cost:q} {input.metrics:q} > {log:q} 2>&1"


rule report:
    input:
        metrics=INPUTS.metrics_files(),
        provenance=INPUTS.model_provenance_files(),
        published=INPUTS.published_files(),
    output:
        html=report(
            paths.report("report.html"),
            caption="../report/report_page.rst",
            category="Report",
        ),
        markdown=paths.report("report.md"),
        published=report(
            paths.report("published_vs_reproduced.csv"),
            caption="../report/published.rst",
            category="Report",
            subcategory="Published vs reproduced",
        ),
        significance=report(
            paths.report("significance.csv"),
            caption="../report/significance.rst",
            category="Report",
            subcategory="Significance",
        ),
        summary=paths.report("report.json"),
        plots=[
            report(
                paths.plot(plot),
                caption="../report/plot.rst",
                category="Plots",
                labels={"plot": plot},
            )
            for plot in PLOTS
        ],
    log:
        paths.log("report", "report"),
    conda:
        "../../envs/eval.yaml"
    params:
        systems=INPUTS.report_json("systems"),
        datasets=INPUTS.report_json("datasets"),
        settings=INPUTS.report_json("settings"),
        plots_dir=lambda wildcards, output: os.path.dirname(output.plots[0]),
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/build_report.py" --systems {params.systems:q} --datasets {params.datasets:q}'
        " --settings {params.settings:q} --published {input.published:q} --provenance {input.provenance:q}"
        " --html {output.html:q} --markdown {output.markdown:q} --published-csv {output.published:q}"
        " --significance-csv {output.significance:q} --json {output.summary:q} --plots-dir {params.plots_dir:q}"
        " {input.metrics:q} > {log:q} 2>&1"
