"""The retriever service. Its API arrives in its own step; its settings are defined now."""
