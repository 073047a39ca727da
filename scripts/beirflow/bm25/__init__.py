"""BM25 with Pyserini (Lucene): indexes and search."""
