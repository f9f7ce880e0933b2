"""Constants of the PanoSAMic architecture and data conventions, named once."""

from __future__ import annotations

#: Side of SAM's square input canvas (pixels). The published weights assume 1024.
CANVAS_SIZE: int = 1024
#: SAM's ViT patch size (pixels per token side).
PATCH_SIZE: int = 16
#: Ratio between the canvas and the decoder's output grid (1024 -> 256).
OUTPUT_STRIDE: int = 4
#: Number of global-attention stages of the SAM ViT that feed the fusion blocks.
NUM_STAGES: int = 4
#: Channels of SAM's neck / prompt embeddings.
NECK_DIM: int = 256
#: Channels of each fusion block's output (four of them are concatenated).
FUSION_OUT_DIM: int = 256
#: Hidden channels of the fusion neck between the E->... and ...->256 projections.
FUSION_HIDDEN_DIM: int = 512
#: Channels of the decoder head's hidden layer.
DECODER_HIDDEN_DIM: int = 256
#: Steepness of the soft threshold of the "max" window aggregation: sigmoid(15 (S - 0.5)).
MAX_AGGREGATION_SHARPNESS: float = 15.0

#: SAM's RGB normalisation, applied to every modality (depth and normals are 3-channel images).
PIXEL_MEAN: tuple[float, float, float] = (123.675, 116.28, 103.53)
PIXEL_STD: tuple[float, float, float] = (58.395, 57.12, 57.375)

#: Modality names, in the canonical order the model stacks them.
MODALITIES: tuple[str, ...] = ("image", "depth", "normals")
#: Label of pixels excluded from losses and metrics.
IGNORE_INDEX: int = -1
#: Most classes a model may have: a label map is a 16-bit PNG (indices 0..65535).
MAX_CLASSES: int = 65536


def token_grid(canvas_size: int = CANVAS_SIZE) -> int:
    """Tokens per side of the ViT for a canvas (64 for 1024)."""
    return canvas_size // PATCH_SIZE


def output_grid(canvas_size: int = CANVAS_SIZE) -> int:
    """Side of the decoder's output grid for a canvas (256 for 1024)."""
    return canvas_size // OUTPUT_STRIDE


def native_size(canvas_size: int = CANVAS_SIZE) -> tuple[int, int]:
    """(height, width) of the 2:1 panorama the model sees natively (512x1024 for 1024)."""
    return canvas_size // 2, canvas_size

#: Input modalities resized with nearest neighbour (colour-coded normals must not be blended).
NEAREST_MODALITIES: frozenset[str] = frozenset({"normals"})
#: Numeric precisions a model runs inference in (bf16: autocast), everywhere a precision is chosen.
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
