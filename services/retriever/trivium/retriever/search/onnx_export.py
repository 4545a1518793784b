"""Export a sentence-transformers embedder or a one-label cross-encoder to ONNX, offline.

The graph is traced from the local weights with torch's TorchScript exporter (no hub, no
optimum: optimum-onnx pins transformers below 5), loaded with eager attention so that ONNX
Runtime's BERT optimizer can fuse attention, layer norms and GELU into its CPU kernels. Every
export is checked against the torch model it came from before it is kept: an fp32 export
whose vectors or scores drift is refused, and the caller stays on torch.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from trivium.retriever.search.onnx_cache import MODEL_FILE
from trivium.retriever.search.onnx_runtime import OnnxModel

__all__ = (
    "MIN_FP32_COSINE",
    "OnnxExportError",
    "OnnxVariant",
    "export_cross_encoder",
    "export_embedder",
)

log = logging.getLogger(__name__)

OnnxVariant = Literal["fp32", "int8"]
MIN_FP32_COSINE = 0.9999
MAX_FP32_SCORE_DIFF = 1e-4
OPSET = 17
PROBES = (
    "refund to my card",
    "How can the effectiveness of an information retrieval system be measured?",
    "Reset the password from the login page; the link expires after an hour. " * 12,
    "GPU",
)
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class OnnxExportError(RuntimeError):
    """The model cannot be exported, or its export does not compute what torch computes."""


def export_embedder(
    model_dir: Path, reference: Any, target: Path, variant: OnnxVariant
) -> dict[str, Any]:
    """`reference`: the loaded SentenceTransformer, the oracle the export is checked against."""
    from sentence_transformers import SentenceTransformer

    first = type(reference[0]).__name__
    if first != "Transformer":
        raise OnnxExportError(f"the model's first module is {first}, not a Transformer")
    try:
        eager = SentenceTransformer(
            str(model_dir),
            device="cpu",
            local_files_only=True,
            model_kwargs={"attn_implementation": "eager"},
        ).eval()
    except Exception as exc:
        raise OnnxExportError(f"cannot reload {model_dir} with eager attention: {exc}") from exc
    names = _input_names(reference.tokenizer)

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = eager

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(dict(zip(names, inputs, strict=True)))["sentence_embedding"]  # type: ignore[no-any-return]

    sample = reference.tokenizer(["a short text", "a somewhat longer text to pad"], padding=True)
    _trace(Pipeline(), names, sample, target / MODEL_FILE, "embedding")
    _optimize(target / MODEL_FILE, reference[0].auto_model.config)
    if variant == "int8":
        _quantize(target / MODEL_FILE)
    expected = reference.encode(
        list(PROBES), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    got = _normalized(
        _run_probes(target / MODEL_FILE, reference.tokenizer, names, reference.max_seq_length)
    )
    cosine = float((expected * got).sum(axis=1).min())
    if variant == "fp32" and cosine < MIN_FP32_COSINE:
        raise OnnxExportError(f"export drifts from torch: min cosine {cosine:.6f}")
    return {"probe_min_cosine": cosine, "opset": OPSET, "torch": torch.__version__}


def export_cross_encoder(
    model_dir: Path, reference: Any, target: Path, variant: OnnxVariant
) -> dict[str, Any]:
    """`reference`: the loaded sentence-transformers CrossEncoder (one label)."""
    from transformers import AutoModelForSequenceClassification

    try:
        eager = AutoModelForSequenceClassification.from_pretrained(
            str(model_dir), attn_implementation="eager", local_files_only=True
        ).eval()
    except Exception as exc:
        raise OnnxExportError(f"cannot reload {model_dir} with eager attention: {exc}") from exc
    names = _input_names(reference.tokenizer)

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = eager

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, inputs, strict=True))).logits  # type: ignore[no-any-return]

    sample = reference.tokenizer(
        ["a query", "another query"], ["a passage", "a longer passage to pad"], padding=True
    )
    _trace(Logits(), names, sample, target / MODEL_FILE, "logits")
    _optimize(target / MODEL_FILE, eager.config)
    if variant == "int8":
        _quantize(target / MODEL_FILE)
    pairs = [[query, passage] for query in PROBES[:2] for passage in PROBES]
    expected = np.asarray(
        reference.predict(pairs, activation_fn=torch.nn.Identity(), show_progress_bar=False)
    ).reshape(-1)
    got = _run_probes(
        target / MODEL_FILE, reference.tokenizer, names, reference.max_seq_length, pairs
    ).reshape(-1)
    diff = float(np.abs(expected - got).max())
    if variant == "fp32" and diff > MAX_FP32_SCORE_DIFF:
        raise OnnxExportError(f"export drifts from torch: max logit difference {diff:.2e}")
    return {"probe_max_logit_diff": diff, "opset": OPSET, "torch": torch.__version__}


def _input_names(tokenizer: Any) -> tuple[str, ...]:
    accepted = set(tokenizer.model_input_names)
    names = tuple(name for name in TEXT_INPUTS if name in accepted)
    if "input_ids" not in names or "attention_mask" not in names:
        raise OnnxExportError(f"tokenizer inputs {sorted(accepted)} lack ids or mask")
    return names


def _trace(
    module: torch.nn.Module,
    names: tuple[str, ...],
    sample: Any,
    path: Path,
    output: str,
) -> None:
    inputs = tuple(torch.tensor(sample[name], dtype=torch.long) for name in names)
    axes: dict[str, dict[int, str]] = {name: {0: "batch", 1: "sequence"} for name in names}
    axes[output] = {0: "batch"}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about shape-dependent branches
            torch.onnx.export(
                module.eval(),
                inputs,
                str(path),
                dynamo=False,
                input_names=list(names),
                output_names=[output],
                dynamic_axes=axes,
                opset_version=OPSET,
            )
    except Exception as exc:
        raise OnnxExportError(f"torch.onnx.export failed: {exc}") from exc


def _optimize(path: Path, config: Any) -> None:
    """ONNX Runtime's transformer fusions for BERT-family graphs; others keep the plain graph."""
    if getattr(config, "model_type", None) not in {"bert", "roberta", "xlm-roberta"}:
        return
    from onnxruntime.transformers.optimizer import optimize_model

    try:
        optimized = optimize_model(
            str(path),
            model_type="bert",
            num_heads=config.num_attention_heads,
            hidden_size=config.hidden_size,
            opt_level=0,
        )
        optimized.save_model_to_file(str(path))
    except Exception as exc:
        raise OnnxExportError(f"onnxruntime optimizer failed: {exc}") from exc
    log.info("onnx graph fused", extra={"fused": optimized.get_fused_operator_statistics()})


def _quantize(path: Path) -> None:
    """int8 dynamic quantization of the weights: opt-in, lossy, checked by the benchmark."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = path.with_suffix(".fp32.onnx")
    path.rename(fp32)
    try:
        quantize_dynamic(
            str(fp32),
            str(path),
            weight_type=QuantType.QInt8,
            # shape inference knows no fused contrib ops: their outputs are float
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    except Exception as exc:
        raise OnnxExportError(f"int8 quantization failed: {exc}") from exc
    fp32.unlink()


def _run_probes(
    path: Path,
    tokenizer: Any,
    names: tuple[str, ...],
    max_length: int,
    pairs: Sequence[Sequence[str]] | None = None,
) -> np.ndarray:
    model = OnnxModel(path, threads=1, input_names=names)
    if pairs is None:
        encoded = tokenizer(
            list(PROBES), padding=True, truncation=True, max_length=max_length, return_tensors="np"
        )
    else:
        encoded = tokenizer(
            [p[0] for p in pairs],
            [p[1] for p in pairs],
            padding=True,
            truncation="longest_first",
            max_length=max_length,
            return_tensors="np",
        )
    output: np.ndarray = model.run(encoded)
    return output


def _normalized(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    normalized: np.ndarray = vectors / np.maximum(norms, 1e-12)
    return normalized
