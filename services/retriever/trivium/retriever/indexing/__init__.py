"""From documents to chunks: reading sources, chunking, content hashes and index versions."""
