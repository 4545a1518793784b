"""Contracts shared by every Trivium service: settings, errors, logging, metrics, Redis."""
