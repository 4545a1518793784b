"""The retriever over HTTP: the Litestar app, its routes and probes, metrics, the server."""
