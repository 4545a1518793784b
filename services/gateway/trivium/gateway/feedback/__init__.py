"""Feedback from the product: answer records, `POST /v1/feedback`, the corrections export.

Submodules are imported by name (`trivium.gateway.feedback.records`, ...): the invoke path
imports `records` while `invoke` itself is being imported, so this package imports nothing.
"""
