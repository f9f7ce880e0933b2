"""The inference option of models whose one option is their precision (compact students, the
open-vocabulary segmenter): ``inference_options_applied(precision=...)`` and the bf16 autocast."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from panosamic.constants import PRECISIONS

__all__ = ["PrecisionOption"]


class PrecisionOption:
    """Mixin of a model that keeps its precision in ``self._precision`` ("fp32" or "bf16") and
    runs its forward under :meth:`_autocast`; it needs ``self.device``."""

    _precision: str = "fp32"

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self._precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def inference_options_applied(self, precision: str | None = None, **changes: Any) -> Iterator[None]:
        """Temporarily run in ``precision`` ("fp32" or "bf16" autocast); other options do not apply."""
        if precision is not None and precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        previous = self._precision
        self._precision = precision or previous
        try:
            yield
        finally:
            self._precision = previous
