"""Answering queries: the engine, its filters and fusion, full text and embeddings."""
