# Report: every metrics file into one leaderboard (CSV, Markdown, HTML).


rule cost:
    input:
        gpu_job_records(),
    output:
        "results/leaderboard/cost.csv",
    log:
        "logs/cost/cost.log",
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
        cost="results/leaderboard/cost.csv",
    output:
        csv="results/leaderboard/leaderboard.csv",
        markdown="results/leaderboard/leaderboard.md",
        html="results/leaderboard/leaderboard.html",
    log:
        "logs/leaderboard/leaderboard.log",
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
        html="results/report/report.html",
        markdown="results/report/report.md",
        published="results/report/published_vs_reproduced.csv",
        significance="results/report/significance.csv",
        summary="results/report/report.json",
        plots=expand("results/report/plots/{plot}.png", plot=PLOTS),
    log:
        "logs/report/report.log",
    conda:
        "../../envs/eval.yaml"
    params:
        systems=report_systems(),
        datasets=report_datasets(),
        settings=report_settings(),
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/build_report.py" --systems {params.systems:q} --datasets {params.datasets:q}'
        " --settings {params.settings:q} --published {input.published:q} --provenance {input.provenance:q}"
        " --html {output.html:q} --markdown {output.markdown:q} --published-csv {output.published:q}"
        " --significance-csv {output.significance:q} --json {output.summary:q} --plots-dir results/report/plots"
        " {input.metrics:q} > {log:q} 2>&1"
