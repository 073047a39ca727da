"""Learned sparse retrieval (SPLADE): term weights, impact index, search."""
