"""Finding chunks: dense and sparse embedding, filters, rank fusion and re-ranking."""
