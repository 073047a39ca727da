# Dense retrieval: each document shard encoded by one GPU job, the queries by one more, then one
# search job per system that streams the shards through FAISS and keeps the global top-k.
# Embeddings live under the encoder's identity (results/{dataset}/embeddings/{encoder}), not the
# system's name, so systems that share an encoder share its embeddings.


rule encode_documents:
    input:
        shards="results/{dataset}/shards/corpus",
        models=model_records,
    output:
        vectors="results/{dataset}/embeddings/{encoder}/corpus/{shard}.npy",
        ids="results/{dataset}/embeddings/{encoder}/corpus/{shard}.ids",
        stats="results/{dataset}/embeddings/{encoder}/corpus/{shard}.json",
    log:
        "logs/encode_documents/{dataset}/{encoder}/{shard}.log",
    benchmark:
        "benchmarks/encode_documents/{dataset}/{encoder}/{shard}.tsv"
    conda:
        "../../envs/gpu.yaml"
    threads: config["threads"]["dense"]
    resources:
        gpu=encoder_resource("gpus", 1),
        mem_mb=encoder_resource("mem_mb", 32000),
        runtime=encoder_resource("runtime", 240),
        batch_size=encoder_batch_size,
        # The config key errors name: a resource, not a param, so renaming, inserting or disabling a
        # system that shares the encoder never re-encodes a corpus (params are rerun triggers).
        config_key=encoder_config_key,
    params:
        encoder=encoder_params,
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/encode_texts.py" --dataset {wildcards.dataset} --kind documents'
        ' --input "{input.shards}/{wildcards.shard}.jsonl" --params {params.encoder:q} --key {resources.config_key}'
        " --batch-size {resources.batch_size} --threads {threads} --model-records {input.models:q} --vectors {output.vectors:q} --ids {output.ids:q}"
        " --stats {output.stats:q} > {log:q} 2>&1"


rule encode_queries:
    input:
        queries="results/{dataset}/data/queries.jsonl",
        models=model_records,
    output:
        vectors="results/{dataset}/embeddings/{encoder}/queries.npy",
        ids="results/{dataset}/embeddings/{encoder}/queries.ids",
        stats="results/{dataset}/embeddings/{encoder}/queries.json",
    log:
        "logs/encode_queries/{dataset}/{encoder}.log",
    benchmark:
        "benchmarks/encode_queries/{dataset}/{encoder}/queries.tsv"
    conda:
        "../../envs/gpu.yaml"
    threads: config["threads"]["dense"]
    resources:
        gpu=encoder_resource("gpus", 1),
        mem_mb=encoder_resource("mem_mb", 32000),
        runtime=encoder_resource("runtime", 240),
        batch_size=encoder_batch_size,
        # The config key errors name: a resource, not a param, so renaming, inserting or disabling a
        # system that shares the encoder never re-encodes a corpus (params are rerun triggers).
        config_key=encoder_config_key,
    params:
        encoder=encoder_params,
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/encode_texts.py" --dataset {wildcards.dataset} --kind queries'
        " --input {input.queries:q} --params {params.encoder:q} --key {resources.config_key}"
        " --batch-size {resources.batch_size} --threads {threads} --model-records {input.models:q} --vectors {output.vectors:q} --ids {output.ids:q}"
        " --stats {output.stats:q} > {log:q} 2>&1"


rule dense_search:
    input:
        unpack(dense_search_inputs),
        models=model_records,
    output:
        run="results/{dataset}/dense/{system}/run.trec",
        provenance="results/{dataset}/dense/{system}/provenance.json",
    log:
        "logs/dense_search/{dataset}/{system}.log",
    benchmark:
        "benchmarks/dense_search/{dataset}/{system}.tsv"
    conda:
        "../../envs/gpu.yaml"
    threads: config["threads"]["dense"]
    resources:
        gpu=model_resource("gpus", 1),
        mem_mb=model_resource("mem_mb", 32000),
        runtime=model_resource("runtime", 240),
    params:
        system=system_config,
        documents=dense_documents_dir,
        shards=lambda wildcards: " ".join(document_shards(wildcards.dataset)),
    shell:
        'OMP_NUM_THREADS={threads} "$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/dense_search.py" --dataset {wildcards.dataset}'
        " --system {wildcards.system} --key dense.{wildcards.system} --queries {input.queries:q}"
        " --documents {params.documents:q} --shards {params.shards} --params {params.system:q}"
        " --model-records {input.models:q} --output {output.run:q} --provenance {output.provenance:q} > {log:q} 2>&1"
