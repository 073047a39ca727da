# Data stage: BEIR zips into the data cache, validated split files, deterministic shards.


# The shared data cache holds data and locks only; each workflow's marker of a fetched archive is
# in its own results/: Snakemake deletes a job's outputs before running it, and a marker in the
# shared cache would vanish under another workflow that had just written it.
rule download_beir:
    output:
        paths.archive_ready(),
    log:
        paths.log("download_beir", "{archive}"),
    retries: 3
    conda:
        "../../envs/base.yaml"
    params:
        url=INPUTS.archive_url,
        md5=INPUTS.archive_md5,
        target=f"{DATA_DIR}/{{archive}}",
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/download_beir.py" --url {params.url} --md5 {params.md5} --target {params.target:q}'
        " --ready {output:q} > {log:q} 2>&1"


rule prepare_dataset:
    input:
        unpack(INPUTS.dataset_source),
    output:
        queries=paths.queries(),
        qrels=paths.qrels(),
        report=paths.data_report(),
    log:
        paths.log("prepare_dataset", "{dataset}"),
    conda:
        "../../envs/base.yaml"
    resources:
        mem_mb=INPUTS.corpus_job_mem_mb("prepare_dataset"),
        runtime=grown_with_attempt(60),
    params:
        folder=INPUTS.dataset_folder,
        split=INPUTS.dataset_split,
        declared=INPUTS.declared_counts,
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/prepare_dataset.py" --dataset {wildcards.dataset} --folder {params.folder:q}'
        " --split {params.split} {params.declared} --queries-out {output.queries} --qrels-out {output.qrels}"
        " --report-out {output.report} > {log} 2>&1"


rule shard_queries:
    input:
        paths.queries(),
    output:
        directory(paths.shards("queries")),
    log:
        paths.log("shard_queries", "{dataset}"),
    conda:
        "../../envs/base.yaml"
    params:
        per_shard=INPUTS.shards_per_file("queries"),
        expected=INPUTS.shard_count("queries"),
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/shard_jsonl.py" --dataset {wildcards.dataset} --input {input} --output-dir {output}'
        " --per-shard {params.per_shard} --expected-shards {params.expected} > {log} 2>&1"


rule shard_corpus:
    input:
        unpack(INPUTS.corpus_source),
    output:
        directory(paths.shards("corpus")),
    log:
        paths.log("shard_corpus", "{dataset}"),
    conda:
        "../../envs/base.yaml"
    resources:
        mem_mb=grown_with_attempt(SHARD_CORPUS_MB),
        runtime=grown_with_attempt(60),
    params:
        corpus=INPUTS.corpus_file,
        per_shard=INPUTS.shards_per_file("documents"),
        expected=INPUTS.shard_count("documents"),
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/shard_jsonl.py" --dataset {wildcards.dataset} --input {params.corpus:q} --output-dir {output}'
        " --per-shard {params.per_shard} --expected-shards {params.expected} > {log} 2>&1"


# CQADupStack has a test split only. The merged folder lives in the shared data cache, so, like a
# download, the rule's output is this workflow's marker, never the folder another workflow may read.
rule merge_cqadupstack:
    input:
        ancient(paths.archive_ready("cqadupstack")),
    output:
        paths.merged_ready(),
    log:
        paths.log("merge_cqadupstack", "{dataset}"),
    conda:
        "../../envs/base.yaml"
    resources:
        mem_mb=grown_with_attempt(2000),
        runtime=grown_with_attempt(60),
    params:
        archive=f"{DATA_DIR}/cqadupstack",
        folder=INPUTS.dataset_folder,
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/merge_cqadupstack.py" --dataset {wildcards.dataset} --archive-folder {params.archive:q}'
        " --split test --output {params.folder:q} --ready {output:q} > {log:q} 2>&1"


# A local dataset (BioASQ, Signal-1M, TREC-NEWS, Robust04: not downloadable) whose files are not
# there yet: the plan still holds its jobs, and this job fails with what to do, so that one
# missing dataset stops nothing else (--keep-going) and `snakemake -n` plans the whole grid.
for missing in INPUTS.missing_local_datasets():

    rule:
        name:
            missing.rule
        output:
            [str(path) for path in missing.paths],
        localrule: True
        params:
            message=missing.message,
        shell:
            "echo {params.message:q} >&2; exit 1"
