# Fusion: runs of any configured systems fused with ranx (RRF, normalised CombSUM, ...). Seconds
# of CPU work, so it runs where Snakemake runs.


rule fuse:
    input:
        INPUTS.system_runs("runs"),
    output:
        run=paths.run("fusion"),
        provenance=paths.provenance("fusion"),
    log:
        paths.log("fuse", "{dataset}", "{system}"),
    conda:
        "../../envs/eval.yaml"
    params:
        system=INPUTS.system_config,
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/fuse_runs.py" --dataset {wildcards.dataset} --system {wildcards.system}'
        " --params {params.system:q} --output {output.run:q} --provenance {output.provenance:q}"
        " -- {input:q} > {log:q} 2>&1"
