# Models: each distinct (model, revision) and adapter fetched once, on the submit host, into the
# model cache, and described by a record (folder, commit, every file's sha256). GPU jobs depend on
# the record and load the folder it names with the hub switched off, so no GPU job talks to a hub
# and a model that cannot be had fails its fetch job before any GPU job of it is submitted.


rule fetch_model:
    output:
        paths.model_record(),
    log:
        paths.log("fetch_model", "{model}"),
    retries: 1
    conda:
        "../../envs/gpu.yaml"
    resources:
        # Not rerun triggers: which system names the model, and whether the user switched the hub off.
        config_key=lambda wildcards: MODELS[wildcards.model].key,
        hub_offline=HUB_OFFLINE_FOR_FETCH,
    params:
        model=lambda wildcards: MODELS[wildcards.model].name,
        revision=lambda wildcards: MODELS[wildcards.model].revision or "",
        marker=lambda wildcards: MODELS[wildcards.model].marker,
    shell:
        'HF_HUB_OFFLINE={resources.hub_offline} "$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/fetch_model.py" --model {params.model:q}'
        " --revision={params.revision:q} --key {resources.config_key:q} --marker {params.marker} --record {output:q} > {log:q} 2>&1"
