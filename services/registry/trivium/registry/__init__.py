"""The versioned artifact registry: templates now, LoRA adapters later, one mechanism."""

from trivium.registry.models import (
    ArtifactSummary,
    ArtifactVersion,
    AuditEntry,
    LabelMove,
    PublishResult,
)
from trivium.registry.readonly import ReadOnlyKind
from trivium.registry.references import DEFAULT_LABEL, Reference, parse_reference
from trivium.registry.store import ABSENT, Registry
from trivium.registry.templates import TEMPLATE_KIND, TemplateRenderer

__all__ = (
    "ABSENT",
    "DEFAULT_LABEL",
    "TEMPLATE_KIND",
    "ArtifactSummary",
    "ArtifactVersion",
    "AuditEntry",
    "LabelMove",
    "PublishResult",
    "ReadOnlyKind",
    "Reference",
    "Registry",
    "TemplateRenderer",
    "parse_reference",
)
