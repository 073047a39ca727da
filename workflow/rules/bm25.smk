# BM25 with Pyserini (Lucene): one index per dataset and field layout, one search job per
# dataset and system, multi-threaded (a Pyserini process costs seconds to start).
from beirflow.workflow.families.bm25 import Bm25Inputs

BM25 = Bm25Inputs(PLAN, SCRIPTS.parent, ARCHIVES)


rule bm25_index:
    input:
        unpack(INPUTS.corpus_source),
    output:
        directory(paths.bm25_index()),
    log:
        paths.log("bm25_index", "{dataset}", "{fields}"),
    conda:
        "../../envs/bm25.yaml"
    threads: INPUTS.threads("bm25_index")
    resources:
        mem_mb=INPUTS.corpus_job_mem_mb("bm25_index"),
        runtime=BM25.index_runtime,
    params:
        corpus=INPUTS.corpus_file,
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/bm25_index.py" --dataset {wildcards.dataset} --corpus {params.corpus:q}'
        " --fields {wildcards.fields} --index {output} --threads {threads} --memory-mb {resources.mem_mb}"
        " > {log} 2>&1"


rule bm25_search:
    input:
        index=BM25.index_dir,
        queries=paths.queries(),
    output:
        run=paths.run("bm25"),
        provenance=paths.provenance("bm25"),
    log:
        paths.log("bm25_search", "{dataset}", "{system}"),
    conda:
        "../../envs/bm25.yaml"
    threads: INPUTS.threads("bm25_search")
    resources:
        mem_mb=grown_with_attempt(4000),
        runtime=grown_with_attempt(60),
    params:
        system=INPUTS.system_config,
    shell:
        '"$BEIRFLOW_PYTHON" "$BEIRFLOW_SCRIPTS/bm25_search.py" --dataset {wildcards.dataset} --system {wildcards.system}'
        " --index {input.index} --queries {input.queries} --params {params.system:q}"
        " --threads {threads} --output {output.run} --provenance {output.provenance} > {log} 2>&1"
