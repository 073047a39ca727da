# Report: every metrics file into one leaderboard (CSV, Markdown, HTML).


localrules:
    leaderboard,


rule leaderboard:
    input:
        all_metrics_files(),
    output:
        csv="results/leaderboard/leaderboard.csv",
        markdown="results/leaderboard/leaderboard.md",
        html="results/leaderboard/leaderboard.html",
    log:
        "logs/leaderboard/leaderboard.log",
    conda:
        "../../envs/base.yaml"
    params:
        primary=config["evaluation"]["primary"],
        labels=leaderboard_labels(),
    shell:
        'python "$BEIRFLOW_SCRIPTS/build_leaderboard.py" --primary {params.primary} --csv {output.csv}'
        " --markdown {output.markdown} --html {output.html} {params.labels} {input} > {log} 2>&1"
