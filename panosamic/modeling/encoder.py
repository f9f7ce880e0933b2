"""The frozen SAM ViT, returning the outputs of its four global-attention blocks.

We reuse segment-anything's :class:`ImageEncoderViT` (so Meta's parameter names load as they
are) and write our own forward, which collects the stage outputs and can run attention either
as SAM writes it ("exact") or through ``scaled_dot_product_attention`` ("sdpa").
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from panosamic.constants import CANVAS_SIZE, NECK_DIM, NUM_STAGES, PATCH_SIZE
from panosamic.modeling.sam_import import sam_module
from panosamic.specs import ViTSpec

_sam = sam_module("modeling.image_encoder")
Attention, Block, ImageEncoderViT = _sam.Attention, _sam.Block, _sam.ImageEncoderViT
get_rel_pos, window_partition, window_unpartition = _sam.get_rel_pos, _sam.window_partition, _sam.window_unpartition

AttentionImpl = Literal["exact", "sdpa"]


#: Largest SDPA bias mask (elements) built at once; global attention on a 64x64 token grid needs
#: images x heads x 4096^2 of them, so larger batches are split along the queries.
DEFAULT_MAX_MASK_ELEMENTS = 2**28


def _rel_pos_bias_terms(attn: Attention, q: torch.Tensor, hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM's decomposed relative-position terms for queries ``q`` (B, heads, H*W, c).

    Returns ``rel_h`` (B, heads, H*W, H) and ``rel_w`` (B, heads, H*W, W): the bias of query i
    on key (kh, kw) is ``rel_h[..., i, kh] + rel_w[..., i, kw]``.
    """
    H, W = hw
    B, n = q.shape[0], q.shape[1]
    rh = get_rel_pos(H, H, attn.rel_pos_h).to(q.dtype)
    rw = get_rel_pos(W, W, attn.rel_pos_w).to(q.dtype)
    r_q = q.reshape(B, n, H, W, -1)
    rel_h = torch.einsum("bnhwc,hkc->bnhwk", r_q, rh).reshape(B, n, H * W, H)
    rel_w = torch.einsum("bnhwc,wkc->bnhwk", r_q, rw).reshape(B, n, H * W, W)
    return rel_h, rel_w


#: Reusable mask buffers of one forward pass, keyed by (elements, dtype, device).
MaskWorkspace = dict[tuple[int, torch.dtype, torch.device], torch.Tensor]


def _mask_buffer(workspace: MaskWorkspace | None, like: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor | None:
    """A contiguous ``shape`` view of a buffer reused across blocks (None: allocate per use)."""
    if workspace is None:
        return None
    numel = 1
    for d in shape:
        numel *= d
    key = (numel, like.dtype, like.device)
    if key not in workspace:
        workspace[key] = like.new_empty(numel)
    return workspace[key].view(shape)


def _sdpa_attention(
    attn: Attention,
    x: torch.Tensor,
    max_mask_elements: int = DEFAULT_MAX_MASK_ELEMENTS,
    workspace: MaskWorkspace | None = None,
) -> torch.Tensor:
    """SAM's attention with the decomposed relative-position bias passed as SDPA's mask.

    The (B, heads, N, N) mask is built for at most ``max_mask_elements`` entries at a time: the
    queries are processed in chunks (each query row is independent, so this is exact). With a
    ``workspace`` (gradients off), the mask memory is reused across chunks and blocks instead of
    being allocated (and page-faulted) again for each.
    """
    B, H, W, _ = x.shape
    n, N = attn.num_heads, H * W
    qkv = attn.qkv(x).reshape(B, N, 3, n, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)  # (B, heads, N, head_dim)
    if not attn.use_rel_pos:
        out = F.scaled_dot_product_attention(q, k, v, scale=attn.scale)
    else:
        rel_h, rel_w = _rel_pos_bias_terms(attn, q, (H, W))
        chunk = max(1, min(N, max_mask_elements // (B * n * N)))
        buffer = _mask_buffer(workspace, rel_h, (B * n * chunk * N,))
        outs = []
        for s in range(0, N, chunk):
            e = min(N, s + chunk)
            if buffer is None:
                mask = rel_h[:, :, s:e, :, None] + rel_w[:, :, s:e, None, :]
            else:
                mask = buffer[: B * n * (e - s) * N].view(B, n, e - s, H, W)
                torch.add(rel_h[:, :, s:e, :, None], rel_w[:, :, s:e, None, :], out=mask)
            mask = mask.reshape(B, n, e - s, N)
            outs.append(F.scaled_dot_product_attention(q[:, :, s:e], k, v, attn_mask=mask, scale=attn.scale))
        out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
    out = out.transpose(1, 2).reshape(B, H, W, -1)
    return attn.proj(out)


def _block_forward(
    block: Block, x: torch.Tensor, impl: AttentionImpl, max_mask_elements: int, workspace: MaskWorkspace | None
) -> torch.Tensor:
    if impl == "exact":
        return block(x)
    shortcut = x
    x = block.norm1(x)
    if block.window_size > 0:
        H, W = x.shape[1], x.shape[2]
        x, pad_hw = window_partition(x, block.window_size)
        x = _sdpa_attention(block.attn, x, max_mask_elements, workspace)
        x = window_unpartition(x, block.window_size, pad_hw, (H, W))
    else:
        x = _sdpa_attention(block.attn, x, max_mask_elements, workspace)
    x = shortcut + x
    return x + block.mlp(block.norm2(x))


class MultiStageImageEncoder(ImageEncoderViT):
    """SAM's ViT whose forward returns ``(neck, [stage outputs])``.

    Stage ``i`` is the token map after global-attention block ``global_attn_indexes[i]``,
    as an ``(N, E, g, g)`` tensor. The neck is SAM's, computed only when asked for.
    """

    def __init__(self, spec: ViTSpec, canvas_size: int = CANVAS_SIZE) -> None:
        if len(spec.global_attn_indexes) != NUM_STAGES:
            raise ValueError(f"a PanoSAMic encoder needs {NUM_STAGES} global-attention stages")
        super().__init__(
            img_size=canvas_size,
            patch_size=PATCH_SIZE,
            in_chans=3,
            embed_dim=spec.embed_dim,
            depth=spec.depth,
            num_heads=spec.num_heads,
            mlp_ratio=4.0,
            out_chans=NECK_DIM,
            qkv_bias=True,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            act_layer=nn.GELU,
            use_abs_pos=True,
            use_rel_pos=True,
            rel_pos_zero_init=True,
            window_size=14,
            global_attn_indexes=spec.global_attn_indexes,
        )
        self.global_attn_indexes = tuple(spec.global_attn_indexes)
        #: "exact" runs SAM's own attention code; "sdpa" the fused kernel (same function).
        self.attention_impl: AttentionImpl = "sdpa"
        #: Bound on the SDPA bias mask built at once (elements); see :func:`_sdpa_attention`.
        self.max_mask_elements: int = DEFAULT_MAX_MASK_ELEMENTS

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, with_neck: bool = False
    ) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        with torch.autocast(device_type=x.device.type, enabled=False):
            # in the weights' dtype also under autocast: a bf16 rounding here persists in every stage
            x = self.patch_embed(x.to(self.patch_embed.proj.weight.dtype))
        if self.pos_embed is not None:
            x = x + self.pos_embed
        stages: list[torch.Tensor] = []
        # Without gradients the attention masks of all blocks can share memory (freed on return).
        workspace: MaskWorkspace | None = None if torch.is_grad_enabled() else {}
        for i, block in enumerate(self.blocks):
            x = _block_forward(block, x, self.attention_impl, self.max_mask_elements, workspace)
            if i in self.global_attn_indexes:
                stages.append(x.permute(0, 3, 1, 2))
        neck = self.neck(x.permute(0, 3, 1, 2)) if with_neck else None
        return neck, stages
