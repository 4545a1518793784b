"""The gateway: the Litestar app application backends call, PMs steer and SREs watch."""
