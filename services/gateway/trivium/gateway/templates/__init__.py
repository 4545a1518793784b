"""Template registry admin API: publish, promote, rollback, history, diff, render."""

from trivium.gateway.templates.routes import TemplateController

__all__ = ("TemplateController",)
