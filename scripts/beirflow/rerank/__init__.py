"""Rerankers: the document store, a first stage's candidates, scoring query shards."""
