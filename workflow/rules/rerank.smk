# Rerankers: a document store per dataset, a first stage's candidates split by query shard (shared
# by every reranker of that first stage and depth), one GPU job per query shard, one merge.
from beirflow.workflow.families.rerank import RerankInputs

RERANK = RerankInputs(PLAN, SCRIPTS.parent, ARCHIVES)


rule document_store:
    input:
        unpack(INPUTS.corpus_source),
    output:
        paths.document_store(),
    log:
        paths.log("document_store", "{dataset}"),
    conda:
        "../../envs/base.yaml"
    resources:
        mem_mb=INPUTS.corpus_job_mem_mb("document_store"),
        runtime=grown_with_attempt(60),
    params:
        corpus=INPUTS.corpus_file,
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/build_document_store.py" --dataset {wildcards.dataset} --corpus {params.corpus:q}'
        " --report {input.report:q} --output {output:q} > {log:q} 2>&1"


rule rerank_candidates:
    input:
        run=RERANK.first_stage_run,
        queries=paths.shards("queries"),
    output:
        directory(paths.candidates()),
    log:
        paths.log("rerank_candidates", "{dataset}", "{first_stage}", "top{depth}"),
    conda:
        "../../envs/base.yaml"
    resources:
        mem_mb=grown_with_attempt(CANDIDATES_MB),
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/write_candidates.py" --dataset {wildcards.dataset} --first-stage {wildcards.first_stage} --run {input.run:q}'
        " --query-shards {input.queries:q} --depth {wildcards.depth} --output-dir {output:q} > {log:q} 2>&1"


rule rerank_shard:
    input:
        candidates=RERANK.candidates_dir,
        documents=paths.document_store(),
        models=INPUTS.model_records,
    output:
        run=paths.rerank_shard(extension="trec"),
        stats=paths.rerank_shard(extension="json"),
    log:
        paths.log("rerank_shard", "{dataset}", "{system}", "{shard}"),
    benchmark:
        paths.benchmark("rerank_shard", "{dataset}", "{system}", "{shard}")
    conda:
        "../../envs/gpu.yaml"
    threads: INPUTS.threads("rerank")
    resources:
        gpu=INPUTS.system_resource("gpus", 1),
        mem_mb=INPUTS.system_resource("mem_mb", 16000),
        runtime=INPUTS.system_resource("runtime", 120),
        batch_size=INPUTS.batch_size,
    params:
        system=INPUTS.system_config,
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/rerank_shard.py" --dataset {wildcards.dataset} --system {wildcards.system}'
        ' --candidates "{input.candidates}/{wildcards.shard}.jsonl" --documents {input.documents:q}'
        " --params {params.system:q} --batch-size {resources.batch_size} --threads {threads} --model-records {input.models:q}"
        " --output {output.run:q} --stats {output.stats:q} > {log:q} 2>&1"


rule rerank_merge:
    input:
        runs=RERANK.shard_files("trec"),
        stats=RERANK.shard_files("json"),
        models=INPUTS.model_records,
    output:
        run=paths.run("rerank"),
        provenance=paths.provenance("rerank"),
    log:
        paths.log("rerank_merge", "{dataset}", "{system}"),
    conda:
        "../../envs/eval.yaml"
    params:
        system=INPUTS.system_config,
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/merge_runs.py" --dataset {wildcards.dataset} --family rerank --tag {wildcards.system}'
        " --params {params.system:q} --output {output.run:q} --provenance {output.provenance:q}"
        " --stats {input.stats:q} --model-records {input.models:q} -- {input.runs:q} > {log:q} 2>&1"
