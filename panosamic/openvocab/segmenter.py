"""A text-prompted semantic segmenter of panoramas on SAM 3 (``transformers``' ``Sam3Model``).

It looks like any panosamic model to the prediction, evaluation and distillation pipelines:
``forward(batched_input)`` takes ``[{"image": (3, H, W) float 0..255}, ...]`` and returns
``[{"sem_preds": (K, H, W)}, ...]`` at each panorama's size, with ``class_names``, ``palette``,
``num_classes`` and ``modalities``. The logits are the class scores of
:mod:`panosamic.openvocab.protocol` (in [0, 1]) with each pixel's final label raised to 2, so their
argmax is the protocol's label map (an ignored pixel, without a catch-all class, keeps its strongest class).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from panosamic.modeling.precision import PrecisionOption
from panosamic.openvocab.classes import ClassPrompts
from panosamic.openvocab.protocol import (
    COVERAGE_THRESHOLD,
    class_scores,
    label_logits,
    labels_from_scores,
    prompt_scores,
)
from panosamic.openvocab.text import TextEmbeddingCache
from panosamic.openvocab.views import ViewLayout, check_views

__all__ = ["OpenVocabConfig", "Sam3Segmenter"]

#: SAM 3's text length (its processor pads every prompt to 32 tokens).
TEXT_LENGTH = 32


@dataclass(frozen=True)
class OpenVocabConfig:
    """What the segmenter segments and how it sees the sphere.

    ``views``: "erp" (the whole panorama, the reference's baseline), "cube" or "tangent";
    ``fov_deg``: the views' field of view (None: the mode's default); ``erp_height``: height of
    the grid the views are blended on (None: the panorama's, at most 1024); ``smoothing``: odd
    majority-filter size (0: off); ``batch_size``: (view, prompt) pairs per decoder pass.
    """

    classes: ClassPrompts
    views: str = "erp"
    fov_deg: float | None = None
    coverage_threshold: float = COVERAGE_THRESHOLD
    smoothing: int = 0
    erp_height: int | None = None
    batch_size: int = 8
    source: str = ""

    def __post_init__(self) -> None:
        check_views(self.views, self.fov_deg)
        if not 0 <= float(self.coverage_threshold) <= 1:
            raise ValueError(f"coverage_threshold must be in [0, 1], got {self.coverage_threshold}")
        if int(self.smoothing) < 0 or (int(self.smoothing) > 1 and int(self.smoothing) % 2 == 0):
            raise ValueError(f"smoothing must be 0 (off) or an odd window size, got {self.smoothing}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def to_dict(self) -> dict[str, Any]:
        return {"architecture": "sam3", "classes": self.classes.to_dict(), "views": self.views,
                "fov_deg": self.fov_deg, "coverage_threshold": self.coverage_threshold,
                "smoothing": self.smoothing, "source": self.source}


class Sam3Segmenter(PrecisionOption, nn.Module):
    """SAM 3 + a class list -> per-class scores on the panorama (see the module docstring)."""

    architecture = "sam3"
    modalities: tuple[str, ...] = ("image",)
    depth_threshold = None
    dataset = None
    semantic_only = True

    def __init__(self, sam: nn.Module, tokenizer: Any, config: OpenVocabConfig, *,
                 image_mean: Sequence[float] = (0.5, 0.5, 0.5), image_std: Sequence[float] = (0.5, 0.5, 0.5),
                 palette: Any = None) -> None:
        super().__init__()
        self.sam = sam
        self.tokenizer = tokenizer
        self.config = config
        self.register_buffer("image_mean", torch.tensor(image_mean, dtype=torch.float32).view(3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(image_std, dtype=torch.float32).view(3, 1, 1), persistent=False)
        self.text_cache = TextEmbeddingCache(self._encode_text)
        self._palette = palette
        self._precision = "fp32"
        self.checkpoint_info = {"source": config.source, "kind": "sam3"}

    # ------------------------------------------------------------------ facts
    @property
    def image_size(self) -> int:
        size = self.sam.config.vision_config.image_size
        return int(size[0] if isinstance(size, (list, tuple)) else size)

    @property
    def native_size(self) -> tuple[int, int]:
        """The panorama size the scores are meaningful at: SAM 3 sees the whole panorama at about
        512 x 1024 (its square input), views at up to 1024 x 2048 (the blending grid)."""
        return (512, 1024) if self.config.views == "erp" else (1024, 2048)

    @property
    def classes(self) -> ClassPrompts:
        return self.config.classes

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.config.classes.names

    @property
    def num_classes(self) -> int:
        return self.config.classes.num_classes

    @property
    def palette(self) -> Any:
        if self._palette is not None and len(self._palette) == self.num_classes:
            return self._palette
        from panosamic.viz import default_palette

        return default_palette(self.num_classes)

    @property
    def device(self) -> torch.device:
        return next(self.sam.parameters()).device

    def configure(self, **changes: Any) -> Sam3Segmenter:
        """Change the classes (``classes=``) or the view options in place; text embeddings already
        computed for a class list stay cached."""
        if "classes" in changes:
            changes["classes"] = ClassPrompts.create(changes["classes"])
            if "palette" not in changes:
                self._palette = None
        if "palette" in changes:
            self._palette = changes.pop("palette")
        self.config = replace(self.config, **changes)
        return self

    def layout(self) -> ViewLayout | None:
        """The perspective views (None for "erp"), kept while the view options stay (its footprints are cached)."""
        if self.config.views == "erp":
            return None
        key = (self.config.views, self.config.fov_deg, self.image_size)
        if getattr(self, "_layout_key", None) != key:
            self._layout = ViewLayout.create(self.config.views, self.image_size, self.config.fov_deg)
            self._layout_key = key
        return self._layout

    # ------------------------------------------------------------------ text
    def _encode_text(self, prompts: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        tok = self.tokenizer(list(prompts), padding="max_length", max_length=TEXT_LENGTH, truncation=True,
                             return_tensors="pt")
        ids, mask = tok["input_ids"].to(self.device), tok["attention_mask"].to(self.device)
        emb = self.sam.get_text_features(input_ids=ids, attention_mask=mask).pooler_output
        return emb, mask

    def text_embeddings(self) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
        """(P, T, D) embeddings and (P, T) mask of every prompt of the class list, and each prompt's class."""
        texts, owners = self.classes.flat_prompts()
        emb, mask = self.text_cache.get(texts, self.device)
        return emb, mask, owners

    # ------------------------------------------------------------------ images
    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, h, w) float 0..255 -> SAM 3's normalised (N, 3, S, S) input (squashed, antialiased)."""
        x = images.float() / 255.0
        s = self.image_size
        if tuple(x.shape[-2:]) != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        return (x - self.image_mean) / self.image_std

    def image_scores(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) SAM 3 inputs -> (N, K, h, w) class scores at SAM 3's mask size."""
        from transformers.modeling_outputs import BaseModelOutputWithPooling
        from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

        emb, mask, owners = self.text_embeddings()
        n, p = pixel_values.shape[0], emb.shape[0]
        with self._autocast():
            vision = self.sam.get_vision_features(pixel_values=pixel_values)
            pairs = [(i, j) for i in range(n) for j in range(p)]
            out: list[torch.Tensor] = []
            for start in range(0, len(pairs), int(self.config.batch_size)):
                chunk = pairs[start : start + int(self.config.batch_size)]
                im = torch.tensor([i for i, _ in chunk], device=pixel_values.device)
                pr = torch.tensor([j for _, j in chunk], device=pixel_values.device)
                sub = Sam3VisionEncoderOutput(
                    fpn_hidden_states=tuple(t[im] for t in vision.fpn_hidden_states),
                    fpn_position_encoding=tuple(t[im] for t in vision.fpn_position_encoding),
                )
                o = self.sam(vision_embeds=sub, text_embeds=BaseModelOutputWithPooling(pooler_output=emb[pr]),
                             attention_mask=mask[pr])
                out.append(prompt_scores(o.pred_masks, o.pred_logits, o.presence_logits))
        per_prompt = torch.cat(out).reshape(n, p, *out[0].shape[-2:])
        return torch.stack([class_scores(s, owners, self.num_classes) for s in per_prompt])

    def panorama_scores(self, image: torch.Tensor) -> torch.Tensor:
        """(3, H, W) float 0..255 panorama -> (K, H, W) class scores (whole panorama or views)."""
        h, w = int(image.shape[-2]), int(image.shape[-1])
        layout = self.layout()
        if layout is None:
            scores = self.image_scores(self.preprocess(image[None]))[0]
        else:
            if w != 2 * h:
                raise ValueError(f"perspective views need a 2:1 panorama, got {w}x{h} (WxH)")
            eh = int(self.config.erp_height or min(h, 1024))
            src = image if eh == h else F.interpolate(image[None].float(), size=(eh, 2 * eh), mode="bilinear",
                                                      align_corners=False, antialias=True)[0]
            views = layout.render(src.float())  # (V, 3, S, S), 0..255
            per_view = torch.cat([self.image_scores(self.preprocess(views[i : i + 4]))
                                  for i in range(0, views.shape[0], 4)])
            s = layout.size
            full = F.interpolate(per_view, size=(s, s), mode="bilinear", align_corners=False)
            scores = layout.blend(full, eh)
        if tuple(scores.shape[-2:]) != (h, w):
            scores = F.interpolate(scores[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        return scores.clamp(0, 1)

    # ------------------------------------------------------------------ the model interface
    def forward(self, batched_input: Sequence[Mapping[str, torch.Tensor]]) -> list[dict[str, Any]]:
        outputs = []
        for item in batched_input:
            image = item["image"]
            if image.ndim == 4:
                image = image[0]
            scores = self.panorama_scores(image.to(self.device))
            labels = labels_from_scores(scores, self.classes.catch_all,
                                        coverage_threshold=self.config.coverage_threshold,
                                        smoothing=int(self.config.smoothing))
            outputs.append({"sem_preds": label_logits(scores, labels), "labels": labels, "class_scores": scores})
        return outputs

    def extra_repr(self) -> str:
        c = self.config
        return f"classes={list(self.class_names)}, views={c.views!r}, fov_deg={c.fov_deg}, source={c.source!r}"
