# Evaluation: any run file, whatever produced it, scored with ranx (trec_eval -c conventions).


rule evaluate:
    input:
        run="results/{dataset}/{family}/{system}/run.trec",
        qrels="results/{dataset}/data/qrels.tsv",
    output:
        "results/{dataset}/{family}/{system}/metrics.json",
    log:
        "logs/evaluate/{dataset}/{family}/{system}.log",
    conda:
        "../../envs/eval.yaml"
    params:
        metrics=config["evaluation"]["metrics"],
    shell:
        'python "$BEIRFLOW_SCRIPTS/evaluate_run.py" --dataset {wildcards.dataset} --system {wildcards.system}'
        " --run {input.run} --qrels {input.qrels} --metrics {params.metrics} --output {output} > {log} 2>&1"
