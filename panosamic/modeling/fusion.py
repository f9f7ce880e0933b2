"""Modality fusion of the encoder's stage outputs: one MCBAM block per global-attention stage."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from panosamic.config import AttentionConfig
from panosamic.constants import FUSION_HIDDEN_DIM, FUSION_OUT_DIM
from panosamic.modeling.attention import MovingAttention


def _upsample2x() -> nn.Upsample:
    return nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)


class FusionBlock(nn.Module):
    """Fuses the M modality maps of one stage: (N*M, E, g, g) -> (N, 256, 4g, 4g).

    Per-modality LayerNorm over (E, g, g); modality-major channel stacking (channel m*E + e);
    x + (x * A_c) * A_s with moving channel then spatial attention; a neck of 1x1 convolutions,
    full-map LayerNorms and two bilinear x2 upsamplings.
    """

    def __init__(
        self,
        embed_dim: int,
        num_modalities: int,
        grid: int,
        channel_attention: AttentionConfig | None,
        spatial_attention: AttentionConfig | None,
    ) -> None:
        super().__init__()
        self.num_modalities = num_modalities
        channels = num_modalities * embed_dim
        self.norm = nn.LayerNorm([embed_dim, grid, grid])
        self.channel_attention = (
            MovingAttention("channel", channels, channel_attention) if channel_attention is not None else None
        )
        self.spatial_attention = (
            MovingAttention("spatial", channels, spatial_attention) if spatial_attention is not None else None
        )
        self.neck = nn.Sequential(
            nn.Conv2d(channels, embed_dim, 1, bias=False),
            nn.LayerNorm([embed_dim, grid, grid]),
            nn.GELU(),
            nn.Conv2d(embed_dim, FUSION_HIDDEN_DIM, 1, bias=False),
            nn.LayerNorm([FUSION_HIDDEN_DIM, grid, grid]),
            _upsample2x(),
            nn.Conv2d(FUSION_HIDDEN_DIM, FUSION_OUT_DIM, 1, bias=False),
            nn.LayerNorm([FUSION_OUT_DIM, 2 * grid, 2 * grid]),
            _upsample2x(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        nm, e, h, w = x.shape
        x = x.reshape(nm // self.num_modalities, self.num_modalities * e, h, w)
        if self.channel_attention is not None or self.spatial_attention is not None:
            y = x
            if self.channel_attention is not None:
                y = y * self.channel_attention(y)
            if self.spatial_attention is not None:
                y = y * self.spatial_attention(y)
            x = x + y
        return self.neck(x)


class FeatureFusion(nn.Module):
    """One fusion block per encoder stage (:class:`FusionBlock`: MCBAM); the blocks' outputs
    concatenated shallow to deep (256 channels each)."""

    def __init__(self, blocks: Iterable[nn.Module]) -> None:
        super().__init__()
        self.fusion_blocks = nn.ModuleList(blocks)
        #: Activation checkpointing of each fusion block while training (saves memory, costs
        #: one more forward of the fusion blocks in backward).
        self.gradient_checkpointing = False

    def forward(self, stages: list[torch.Tensor]) -> torch.Tensor:
        if len(stages) != len(self.fusion_blocks):
            raise ValueError(f"expected {len(self.fusion_blocks)} stage outputs, got {len(stages)}")
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            outs = [checkpoint(block, s, use_reentrant=False) for block, s in zip(self.fusion_blocks, stages, strict=True)]
        else:
            outs = [block(s) for block, s in zip(self.fusion_blocks, stages, strict=True)]
        return torch.cat(outs, dim=1)


class BasicFusion(nn.Module):
    """Baseline fusion of the SAM neck outputs: concatenate, add or multiply the modalities."""

    def __init__(self, mode: str, num_modalities: int) -> None:
        super().__init__()
        if mode not in ("concat", "add", "mult"):
            raise ValueError(f"basic fusion must be concat, add or mult, got {mode!r}")
        self.mode = mode
        self.num_modalities = num_modalities

    @property
    def out_channels_factor(self) -> int:
        return self.num_modalities if self.mode == "concat" else 1

    def forward(self, neck: torch.Tensor) -> torch.Tensor:
        nm, c, h, w = neck.shape
        x = neck.reshape(nm // self.num_modalities, self.num_modalities, c, h, w)
        if self.mode == "concat":
            return x.reshape(-1, self.num_modalities * c, h, w)
        if self.mode == "add":
            return x.sum(dim=1)
        return x.prod(dim=1)
