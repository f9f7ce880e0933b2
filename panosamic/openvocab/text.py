"""Text embeddings of a class list, computed once and kept (per prompt tuple, device and dtype)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["TextEmbeddingCache"]


class TextEmbeddingCache:
    """``get(prompts)`` -> ``(embeddings (P, T, D), attention_mask (P, T))``; ``encode(prompts)`` runs
    only for a prompt tuple not seen before (``calls`` counts those runs)."""

    def __init__(self, encode: Callable[[tuple[str, ...]], tuple[torch.Tensor, torch.Tensor]]) -> None:
        self._encode = encode
        self._store: dict[Any, tuple[torch.Tensor, torch.Tensor]] = {}
        self.calls = 0

    def get(self, prompts: tuple[str, ...], device: torch.device | str, dtype: torch.dtype | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
        key = (tuple(prompts), str(torch.device(device)), dtype)
        if key not in self._store:
            with torch.no_grad():
                emb, mask = self._encode(tuple(prompts))
            self.calls += 1
            self._store[key] = (emb.to(device=device, dtype=dtype or emb.dtype), mask.to(device))
        return self._store[key]

    def clear(self) -> None:
        self._store.clear()

    def __len__(self) -> int:
        return len(self._store)
