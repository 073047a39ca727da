# Learned sparse retrieval (SPLADE): each document shard encoded into term weights by one GPU job (job
# arrays on SLURM), the shards' vectors in one Anserini impact index per dataset and encoder, then one
# search job per system that encodes the queries and searches the index. Vectors and index live under
# the encoder's identity, so systems that share an encoder share them.
from beirflow.workflow.families.splade import SpladeInputs, impact_index, vectors

SPLADE = SpladeInputs(PLAN, SCRIPTS.parent, ARCHIVES)


rule encode_sparse_documents:
    input:
        shards=paths.shards("corpus"),
        models=INPUTS.model_records,
    output:
        vectors=vectors("{dataset}", "{encoder}", "{shard}"),
        record=vectors("{dataset}", "{encoder}", "{shard}", "json"),
    log:
        paths.log("encode_sparse_documents", "{dataset}", "{encoder}", "{shard}"),
    benchmark:
        paths.benchmark("encode_sparse_documents", "{dataset}", "{encoder}", "{shard}")
    conda:
        "../../envs/splade.yaml"
    threads: SPLADE.encoder_need("threads")
    resources:
        gpu=SPLADE.encoder_need("gpus"),
        mem_mb=SPLADE.encoder_need("mem_mb"),
        runtime=SPLADE.encoder_need("runtime"),
        batch_size=INPUTS.unit_batch_size,
        config_key=INPUTS.shared_unit_key,
    params:
        encoder=INPUTS.shared_unit_params,
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/encode_sparse.py" --dataset {wildcards.dataset} --encoder {wildcards.encoder}'
        ' --input "{input.shards}/{wildcards.shard}.jsonl" --params {params.encoder:q} --key {resources.config_key}'
        " --batch-size {resources.batch_size} --threads {threads} --model-records {input.models:q}"
        " --vectors {output.vectors:q} --record {output.record:q} > {log:q} 2>&1"


rule sparse_index:
    input:
        vectors=SPLADE.shard_vectors,
    output:
        directory(impact_index()),
    log:
        paths.log("sparse_index", "{dataset}", "{encoder}"),
    conda:
        "../../envs/splade.yaml"
    threads: SPLADE.encoder_need("threads")
    resources:
        mem_mb=grown_with_attempt(8000),
        runtime=grown_with_attempt(120),
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/sparse_index.py" --dataset {wildcards.dataset} --encoder {wildcards.encoder}'
        " --vectors {input.vectors:q} --index {output:q} --threads {threads} > {log:q} 2>&1"


rule sparse_search:
    input:
        index=SPLADE.system_index,
        queries=paths.queries(),
        models=INPUTS.model_records,
    output:
        run=paths.run("splade"),
        provenance=paths.provenance("splade"),
    log:
        paths.log("sparse_search", "{dataset}", "{system}"),
    benchmark:
        paths.benchmark("sparse_search", "{dataset}", "{system}")
    conda:
        "../../envs/splade.yaml"
    threads: SPLADE.system_need("threads")
    resources:
        gpu=SPLADE.system_need("gpus"),
        mem_mb=SPLADE.system_need("mem_mb"),
        runtime=SPLADE.system_need("runtime"),
    params:
        system=INPUTS.system_config,
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/sparse_search.py" --dataset {wildcards.dataset} --system {wildcards.system}'
        " --key splade.{wildcards.system} --index {input.index:q} --queries {input.queries:q} --params {params.system:q}"
        " --model-records {input.models:q} --threads {threads} --output {output.run:q} --provenance {output.provenance:q}"
        " > {log:q} 2>&1"
