"""``SegmentationModel``: what prediction, evaluation and the demo need of a model, whatever its kind.

:func:`panosamic.load_model` returns one for every kind of checkpoint (PanoSAMic, a compact
student, its ONNX export, kinds registered later): a forward over a batch of panoramas giving
per-pixel class scores, the facts its config states (inputs, classes, labels, native size) and where
its weights came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

__all__ = ["SegmentationModel"]


@runtime_checkable
class SegmentationModel(Protocol):
    """A segmentation model of equirectangular panoramas (structural type: nothing to inherit).

    ``forward`` / ``__call__`` take samples (dicts modality -> float ``(3, H, W)`` on the 0..255
    scale, ``W = 2H``) and return one dict per sample whose ``"sem_preds"`` holds the
    ``(num_classes, H, W)`` class scores. ``checkpoint_info``: where :func:`panosamic.load_model`
    loaded the weights from (``source``, ``kind``, ...), None for a model built in code.
    """

    config: Any
    checkpoint_info: dict[str, Any] | None

    @property
    def modalities(self) -> tuple[str, ...]: ...

    @property
    def num_classes(self) -> int: ...

    @property
    def class_names(self) -> tuple[str, ...] | None: ...

    @property
    def palette(self) -> tuple[tuple[int, int, int], ...] | None: ...

    @property
    def depth_threshold(self) -> float | None: ...

    @property
    def native_size(self) -> tuple[int, int]: ...

    def __call__(self, batched_input: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]: ...

    def eval(self) -> Any: ...

    def to(self, device: Any) -> Any: ...

    def inference_options_applied(self, *args: Any, **changes: Any) -> AbstractContextManager[Any]: ...
