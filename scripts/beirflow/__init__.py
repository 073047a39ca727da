"""beirflow: BEIR retrieval benchmarks as a Snakemake workflow.

The package holds the logic; the stage programs in ``scripts/`` are thin CLIs over it.
Data flows one way: dataset -> shards -> runs -> merged run -> metrics -> leaderboard.
"""

__version__ = "0.1.0"
