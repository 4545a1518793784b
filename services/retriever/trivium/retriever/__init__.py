"""The retriever service: ingest, hybrid search and re-ranking over Qdrant."""
