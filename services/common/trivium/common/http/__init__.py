"""HTTP plumbing every service shares (needs a service extra: litestar, uvicorn)."""
