"""The kinds of model :func:`panosamic.load_model` loads, by config.json's ``"architecture"``.

A kind is a loader, ``loader(checkpoint, *, subfolder=None, device="cpu", **options) -> model``
(a :class:`~panosamic.modeling.protocol.SegmentationModel`), and optionally a ``claims(checkpoint,
subfolder) -> bool`` test for checkpoints that carry no panosamic config.json (a registered name,
another library's folder). Both may be given as ``"module:function"`` strings, imported on first
use, so registering a kind costs no import::

    register_kind("sam3", "panosamic.openvocab.loading:load_sam3",
                  claims="panosamic.openvocab.loading:is_sam3_checkpoint")

``options`` are what the caller of ``load_model`` gave (``config``, ``sam_weights``,
``semantic_only``, ``strict``, ``revision``, ``cache_dir``, ``token``, ``local_files_only``, ...,
and any keyword of the kind's own); a loader refuses the ones it cannot honour.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ModelKind", "get_kind", "list_kinds", "register_kind"]

Loader = Callable[..., Any]
Claims = Callable[..., bool]


def _resolve(target: Callable[..., Any] | str) -> Callable[..., Any]:
    if callable(target):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class ModelKind:
    """One kind of model: its ``"architecture"`` name, its loader and (optionally) its claims test."""

    name: str
    loader: Loader | str
    claims: Claims | str | None = None

    def load(self, checkpoint: Any, **options: Any) -> Any:
        return _resolve(self.loader)(checkpoint, **options)

    def claim(self, checkpoint: Any, subfolder: str | None) -> bool:
        return self.claims is not None and bool(_resolve(self.claims)(checkpoint, subfolder))


_KINDS: dict[str, ModelKind] = {}


def register_kind(name: str, loader: Loader | str, *, claims: Claims | str | None = None) -> ModelKind:
    """Register (or replace) the loader of the kind whose config.json says ``"architecture": name``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a model kind needs a name, got {name!r}")
    kind = ModelKind(name, loader, claims)
    _KINDS[name] = kind
    return kind


def get_kind(name: str) -> ModelKind:
    """The registered kind of an ``"architecture"`` name (ValueError naming the known ones)."""
    if name not in _KINDS:
        raise ValueError(f"config.json says \"architecture\": {name!r}, which this panosamic does not load "
                         f"(it loads {', '.join(repr(k) for k in _KINDS)}); upgrade panosamic?")
    return _KINDS[name]


def list_kinds() -> list[str]:
    """The registered ``"architecture"`` names, in registration order."""
    return list(_KINDS)


def claiming_kind(checkpoint: Any, subfolder: str | None) -> ModelKind | None:
    """The first registered kind whose claims test accepts the checkpoint, if any."""
    return next((k for k in _KINDS.values() if k.claim(checkpoint, subfolder)), None)
