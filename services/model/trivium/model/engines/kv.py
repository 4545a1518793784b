"""KV-cache surgery for continuous batching: admit new rows into a running batch, drop done ones.

Rows are left-padded: every row's real tokens end at the right edge, the attention mask
marks padding with 0, and each row carries its own position counter.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache

__all__ = ("merge_batches", "select_rows")


def _left_pad(tensor: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    missing = length - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def merge_batches(
    first: tuple[DynamicCache, torch.Tensor], second: tuple[DynamicCache, torch.Tensor]
) -> tuple[DynamicCache, torch.Tensor]:
    """Stack two (cache, attention mask) batches into one, padding the shorter on the left."""
    (cache_a, mask_a), (cache_b, mask_b) = first, second
    length = max(mask_a.shape[1], mask_b.shape[1])
    merged = DynamicCache()
    layers_a: list[Any] = list(cache_a.layers)
    layers_b: list[Any] = list(cache_b.layers)
    for index, (layer_a, layer_b) in enumerate(zip(layers_a, layers_b, strict=True)):
        keys = torch.cat([_left_pad(layer_a.keys, length, 2), _left_pad(layer_b.keys, length, 2)])
        values = torch.cat(
            [_left_pad(layer_a.values, length, 2), _left_pad(layer_b.values, length, 2)]
        )
        merged.update(keys, values, index)
    mask = torch.cat([_left_pad(mask_a, length, 1), _left_pad(mask_b, length, 1)])
    return merged, mask


def select_rows(
    cache: DynamicCache, mask: torch.Tensor, keep: list[int]
) -> tuple[DynamicCache, torch.Tensor]:
    """Keep only rows `keep` (in order), and trim columns that are padding in every kept row."""
    index = torch.tensor(keep, dtype=torch.long)
    cache.batch_select_indices(index)
    mask = mask.index_select(0, index)
    live = int(mask.any(dim=0).nonzero().min()) if mask.any() else mask.shape[1]
    if live > 0:
        layers: list[Any] = list(cache.layers)
        for layer in layers:
            layer.keys = layer.keys[:, :, live:, :]
            layer.values = layer.values[:, :, live:, :]
        mask = mask[:, live:]
    return cache, mask
