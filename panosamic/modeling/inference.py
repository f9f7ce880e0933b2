"""How the forward pass runs (attention kernel, encoder batching, precision); no effect on weights."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from panosamic.constants import PRECISIONS

#: Images per encoder call on the fast path (bounds activation memory for large batches).
FAST_ENCODER_BATCH = 8

InferencePath = Literal["exact", "fast"]


@dataclass(frozen=True)
class InferenceOptions:
    """How :meth:`PanoSAMic.forward` runs; none of these changes the weights or the state dict.

    * ``attention``: "sdpa" (fused ``scaled_dot_product_attention`` with the relative-position
      bias as mask; same function as SAM's) or "exact" (SAM's own attention code).
    * ``encoder_batch``: images per encoder call: "all" (one call for every sample x view x
      modality), "per_view" (one call per (sample, view) with its M modality images, as the
      reference does) or a positive int (chunks of at most that many images).
    * ``precision``: "fp32", or "bf16": the encoder's transformer blocks run under bf16 autocast
      on the model's device (CPU or CUDA); its patch embedding, the residual stream, the stage
      outputs, fusion and decoder stay float32 (in bf16 they cost argmax agreement on the parity
      case and were no faster on CPU); logits are float32.
    * ``channels_last``: run fusion and decoder on channels-last tensors.
    * ``compile``: run the encoder through ``torch.compile`` (compiled on first use).
    * ``inference_mode``: an eval-mode forward called with gradients disabled runs under
      ``torch.inference_mode`` (outputs are ordinary tensors).
    """

    attention: Literal["sdpa", "exact"] = "sdpa"
    encoder_batch: Literal["all", "per_view"] | int = FAST_ENCODER_BATCH
    precision: Literal["fp32", "bf16"] = "fp32"
    channels_last: bool = False
    compile: bool = False
    inference_mode: bool = True

    def __post_init__(self) -> None:
        if self.attention not in ("sdpa", "exact"):
            raise ValueError(f"attention must be 'sdpa' or 'exact', got {self.attention!r}")
        eb = self.encoder_batch
        if isinstance(eb, bool) or not (eb in ("all", "per_view") or (isinstance(eb, int) and eb >= 1)):
            raise ValueError(f"encoder_batch must be 'all', 'per_view' or a positive int, got {eb!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("channels_last", "compile", "inference_mode"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")

    @classmethod
    def exact(cls) -> InferenceOptions:
        """The reference's way: SAM attention, one encoder call per (sample, view), fp32."""
        return cls(attention="exact", encoder_batch="per_view", precision="fp32", inference_mode=False)

    @classmethod
    def fast(cls, **changes: Any) -> InferenceOptions:
        """SDPA attention, batched encoder calls, inference mode (fp32 unless ``precision="bf16"``)."""
        return replace(cls(), **changes)

    @classmethod
    def for_path(cls, path: str, **changes: Any) -> InferenceOptions:
        if path == "exact":
            return replace(cls.exact(), **changes)
        if path == "fast":
            return cls.fast(**changes)
        raise ValueError(f"inference path must be 'exact' or 'fast', got {path!r}")
