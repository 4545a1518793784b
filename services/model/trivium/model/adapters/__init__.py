"""LoRA adapters as registry artifacts: a content-addressed copy plus metadata, versioned."""

from trivium.model.adapters.kind import ADAPTER_KIND, AdapterKind
from trivium.model.adapters.store import AdapterStore

__all__ = ("ADAPTER_KIND", "AdapterKind", "AdapterStore")
