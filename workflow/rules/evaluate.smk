# Evaluation: every run of a dataset, whatever produced it, scored with ranx (trec_eval -c
# conventions) in one job per dataset: starting a process and loading ranx's compiled code takes
# seconds, evaluating a run milliseconds.


rule evaluate:
    input:
        runs=INPUTS.dataset_run_files,
        qrels=paths.qrels(),
    output:
        report(
            paths.metrics(),
            caption="../report/metrics.rst",
            category="Per dataset",
            subcategory="{dataset}",
            labels={"dataset": "{dataset}"},
        ),
    log:
        paths.log("evaluate", "{dataset}"),
    conda:
        "../../envs/eval.yaml"
    params:
        systems=INPUTS.dataset_systems,
        metrics=INPUTS.metrics(),
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/evaluate_dataset.py" --dataset {wildcards.dataset} --systems {params.systems}'
        " --runs {input.runs:q} --qrels {input.qrels:q} --metrics {params.metrics} --output {output:q} > {log:q} 2>&1"
