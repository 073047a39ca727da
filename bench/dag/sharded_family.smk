# A planning-only family for bench/dag_planning.py: 12 systems sharded over queries, 20 shards
# each, added as every family is (a schema section and a family record, which the bench writes,
# and this rule file: the query shard directory, one merge per dataset and system). Its jobs are
# only ever dry-run.
BENCH_SHARDS = [f"{index:04d}" for index in range(20)]


def bench_shard_runs(wildcards):
    return expand(
        "results/{dataset}/sharded/{system}/shards/{shard}.trec",
        dataset=wildcards.dataset,
        system=wildcards.system,
        shard=BENCH_SHARDS,
    )


rule sharded_shard:
    input:
        queries="results/{dataset}/shards/queries",
    output:
        "results/{dataset}/sharded/{system}/shards/{shard}.trec",
    log:
        "logs/sharded_shard/{dataset}/{system}/{shard}.log",
    shell:
        "exit 1"


rule sharded_merge:
    input:
        bench_shard_runs,
    output:
        "results/{dataset}/sharded/{system}/run.trec",
    log:
        "logs/sharded_merge/{dataset}/{system}.log",
    shell:
        'python "$BEIRFLOW_SCRIPTS/merge_runs.py" --tag {wildcards.system} --output {output} {input} > {log} 2>&1'
