"""Quick LoRA fine-tunes: dataset checks, training, evaluation against the base, registration."""

from trivium.model.finetune.base_model import base_model_sha256
from trivium.model.finetune.dataset import Example, Message, dataset_sha256, load_dataset
from trivium.model.finetune.register import (
    open_adapter_store,
    register_finetuned,
    run_finetune_command,
)
from trivium.model.finetune.train import (
    METADATA_FILE,
    FinetuneMetrics,
    FinetuneReport,
    finetune,
)

__all__ = (
    "METADATA_FILE",
    "Example",
    "FinetuneMetrics",
    "FinetuneReport",
    "Message",
    "base_model_sha256",
    "dataset_sha256",
    "finetune",
    "load_dataset",
    "open_adapter_store",
    "register_finetuned",
    "run_finetune_command",
)
