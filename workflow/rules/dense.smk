# Dense retrieval: each document shard encoded by one GPU job, the queries by one more, then one
# search job per system that streams the shards through FAISS and keeps the global top-k.
# Embeddings live under the encoder's identity (results/{dataset}/embeddings/{encoder}), not the
# system's name, so systems that share an encoder share its embeddings.
from beirflow.workflow.families.dense import DenseInputs

DENSE = DenseInputs(PLAN, SCRIPTS.parent, ARCHIVES)


rule encode_documents:
    input:
        shards=paths.shards("corpus"),
        models=INPUTS.model_records,
    output:
        vectors=paths.corpus_embeddings(extension="npy"),
        ids=paths.corpus_embeddings(extension="ids"),
        stats=paths.corpus_embeddings(extension="json"),
    log:
        paths.log("encode_documents", "{dataset}", "{encoder}", "{shard}"),
    benchmark:
        paths.benchmark("encode_documents", "{dataset}", "{encoder}", "{shard}")
    conda:
        "../../envs/gpu.yaml"
    threads: INPUTS.threads("dense")
    resources:
        gpu=INPUTS.unit_resource("gpus", 1),
        mem_mb=INPUTS.unit_resource("mem_mb", 32000),
        runtime=INPUTS.unit_resource("runtime", 240),
        batch_size=INPUTS.unit_batch_size,
        # The config key errors name: a resource, not a param, so renaming, inserting or disabling a
        # system that shares the encoder never re-encodes a corpus (params are rerun triggers).
        config_key=INPUTS.shared_unit_key,
    params:
        encoder=INPUTS.shared_unit_params,
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/encode_texts.py" --dataset {wildcards.dataset} --encoder {wildcards.encoder} --kind documents'
        ' --input "{input.shards}/{wildcards.shard}.jsonl" --params {params.encoder:q} --key {resources.config_key}'
        " --batch-size {resources.batch_size} --threads {threads} --model-records {input.models:q} --vectors {output.vectors:q} --ids {output.ids:q}"
        " --stats {output.stats:q} > {log:q} 2>&1"


rule encode_queries:
    input:
        queries=paths.queries(),
        models=INPUTS.model_records,
    output:
        vectors=paths.query_embeddings(extension="npy"),
        ids=paths.query_embeddings(extension="ids"),
        stats=paths.query_embeddings(extension="json"),
    log:
        paths.log("encode_queries", "{dataset}", "{encoder}"),
    benchmark:
        paths.benchmark("encode_queries", "{dataset}", "{encoder}", "queries")
    conda:
        "../../envs/gpu.yaml"
    threads: INPUTS.threads("dense")
    resources:
        gpu=INPUTS.unit_resource("gpus", 1),
        mem_mb=INPUTS.unit_resource("mem_mb", 32000),
        runtime=INPUTS.unit_resource("runtime", 240),
        batch_size=INPUTS.unit_batch_size,
        # The config key errors name: a resource, not a param, so renaming, inserting or disabling a
        # system that shares the encoder never re-encodes a corpus (params are rerun triggers).
        config_key=INPUTS.shared_unit_key,
    params:
        encoder=INPUTS.shared_unit_params,
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/encode_texts.py" --dataset {wildcards.dataset} --encoder {wildcards.encoder} --kind queries'
        " --input {input.queries:q} --params {params.encoder:q} --key {resources.config_key}"
        " --batch-size {resources.batch_size} --threads {threads} --model-records {input.models:q} --vectors {output.vectors:q} --ids {output.ids:q}"
        " --stats {output.stats:q} > {log:q} 2>&1"


rule dense_search:
    input:
        unpack(DENSE.search_inputs),
        models=INPUTS.model_records,
    output:
        run=paths.run("dense"),
        provenance=paths.provenance("dense"),
    log:
        paths.log("dense_search", "{dataset}", "{system}"),
    benchmark:
        paths.benchmark("dense_search", "{dataset}", "{system}")
    conda:
        "../../envs/gpu.yaml"
    threads: INPUTS.threads("dense")
    resources:
        gpu=INPUTS.system_resource("gpus", 1),
        mem_mb=DENSE.search_mem_mb,
        runtime=INPUTS.system_resource("runtime", 240),
    params:
        system=INPUTS.system_config,
    shell:
        'OMP_NUM_THREADS={threads} "$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/dense_search.py" --dataset {wildcards.dataset}'
        " --system {wildcards.system} --key dense.{wildcards.system} --queries {input.queries:q} --query-ids {input.query_ids:q}"
        " --query-stats {input.query_stats:q} --vectors {input.vectors:q} --ids {input.ids:q} --stats {input.stats:q} --params {params.system:q}"
        " --model-records {input.models:q} --output {output.run:q} --provenance {output.provenance:q} > {log:q} 2>&1"


# keep_embeddings: false. Once every search over an encoder's vectors of a dataset has run, they are
# deleted. Snakemake does not rebuild a missing intermediate whose consumers are complete, so a plain
# rerun plans nothing; a search that has to run again has the corpus encoded again first.
rule drop_embeddings:
    input:
        runs=DENSE.encoder_search_runs,
    output:
        paths.dropped_embeddings(),
    log:
        paths.log("drop_embeddings", "{dataset}", "{encoder}"),
    conda:
        "../../envs/base.yaml"
    params:
        vectors=DENSE.encoder_corpus_vectors,
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/drop_embeddings.py" --dataset {wildcards.dataset} --encoder {wildcards.encoder}'
        " --vectors {params.vectors:q} --runs {input.runs:q} --output {output:q} > {log:q} 2>&1"
