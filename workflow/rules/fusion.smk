# Fusion: runs of any configured systems fused with ranx (RRF, normalised CombSUM, ...). Seconds
# of CPU work, so it runs where Snakemake runs.


rule fuse:
    input:
        fusion_inputs,
    output:
        run="results/{dataset}/fusion/{system}/run.trec",
        provenance="results/{dataset}/fusion/{system}/provenance.json",
    log:
        "logs/fuse/{dataset}/{system}.log",
    conda:
        "../../envs/eval.yaml"
    params:
        system=system_config,
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/fuse_runs.py" --dataset {wildcards.dataset} --system {wildcards.system}'
        " --params {params.system:q} --output {output.run:q} --provenance {output.provenance:q}"
        " -- {input:q} > {log:q} 2>&1"
