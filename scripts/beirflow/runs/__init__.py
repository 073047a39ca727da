"""Run files: TREC reading and writing, their checks, merging shard runs, runs as columns."""
