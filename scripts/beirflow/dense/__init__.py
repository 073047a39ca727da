"""Dense retrieval: embeddings on disk and exact sharded search."""
