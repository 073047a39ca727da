# Learned sparse retrieval (SPLADE): each document shard encoded into term weights by one GPU job (job
# arrays on SLURM), the shards' vectors in one Anserini impact index per dataset and encoder, then one
# search job per system that encodes the queries and searches the index. Vectors and index live under
# the encoder's identity, so systems that share an encoder share them.
from beirflow.workflow.families.splade import encoder_need, impact_index, vectors


rule encode_sparse_documents:
    input:
        shards=paths.shards("corpus"),
        models=model_records,
    output:
        vectors=vectors("{dataset}", "{encoder}", "{shard}"),
        record=vectors("{dataset}", "{encoder}", "{shard}", "json"),
    log:
        paths.log("encode_sparse_documents", "{dataset}", "{encoder}", "{shard}"),
    benchmark:
        paths.benchmark("encode_sparse_documents", "{dataset}", "{encoder}", "{shard}")
    conda:
        "../../envs/splade.yaml"
    threads: encoder_need(PLAN, "threads")
    resources:
        gpu=encoder_need(PLAN, "gpus"),
        mem_mb=encoder_need(PLAN, "mem_mb"),
        runtime=encoder_need(PLAN, "runtime"),
        batch_size=lambda wildcards: max(
            PLAN.entry(system)["batch_size"]
            for system in ENCODERS[wildcards.encoder].systems
        ),
        config_key=lambda wildcards: f"splade.{min(ENCODERS[wildcards.encoder].systems)}",
    params:
        encoder=lambda wildcards: json.dumps(
            ENCODERS[wildcards.encoder].identity, sort_keys=True
        ),
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/encode_sparse.py" --dataset {wildcards.dataset} --encoder {wildcards.encoder}'
        ' --input "{input.shards}/{wildcards.shard}.jsonl" --params {params.encoder:q} --key {resources.config_key}'
        " --batch-size {resources.batch_size} --threads {threads} --model-records {input.models:q}"
        " --vectors {output.vectors:q} --record {output.record:q} > {log:q} 2>&1"


rule sparse_index:
    input:
        vectors=lambda wildcards: [
            vectors(wildcards.dataset, wildcards.encoder, shard)
            for shard in document_shards(wildcards.dataset)
        ],
    output:
        directory(impact_index()),
    log:
        paths.log("sparse_index", "{dataset}", "{encoder}"),
    conda:
        "../../envs/splade.yaml"
    threads: encoder_need(PLAN, "threads")
    resources:
        mem_mb=grown_with_attempt(8000),
        runtime=grown_with_attempt(120),
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/sparse_index.py" --dataset {wildcards.dataset} --encoder {wildcards.encoder}'
        " --vectors {input.vectors:q} --index {output:q} --threads {threads} > {log:q} 2>&1"


rule sparse_search:
    input:
        index=lambda wildcards: impact_index(
            wildcards.dataset, PLAN.system_encoder(wildcards.system)
        ),
        queries=paths.queries(),
        models=model_records,
    output:
        run=paths.run("splade"),
        provenance=paths.provenance("splade"),
    log:
        paths.log("sparse_search", "{dataset}", "{system}"),
    benchmark:
        paths.benchmark("sparse_search", "{dataset}", "{system}")
    conda:
        "../../envs/splade.yaml"
    threads: lambda wildcards: PLAN.entry(wildcards.system)["resources"].get("threads", 4)
    resources:
        gpu=model_resource("gpus", 1),
        mem_mb=model_resource("mem_mb", 16000),
        runtime=model_resource("runtime", 240),
    params:
        system=system_config,
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/sparse_search.py" --dataset {wildcards.dataset} --system {wildcards.system}'
        " --key splade.{wildcards.system} --index {input.index:q} --queries {input.queries:q} --params {params.system:q}"
        " --model-records {input.models:q} --threads {threads} --output {output.run:q} --provenance {output.provenance:q}"
        " > {log:q} 2>&1"
