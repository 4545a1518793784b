"""The `trivium` command line: one entry point, a command group per service."""
