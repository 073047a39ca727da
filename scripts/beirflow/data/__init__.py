"""Datasets: the BEIR catalogue, downloads, BEIR-layout files and their validation, shards."""
