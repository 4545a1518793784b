"""Wire contracts between services: the structs one service serves and another sends."""
