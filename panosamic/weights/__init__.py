"""Pretrained weights that PanoSAMic builds on (Meta's SAM checkpoints)."""

from panosamic.weights.sam import (
    SAM_CHECKPOINTS,
    SamCheckpoint,
    SamWeightsUnavailableError,
    download_sam_checkpoint,
    get_sam_checkpoint,
    load_sam_state_dict,
    resolve_sam_weights,
    sam_cache_dir,
    verify_sam_checkpoint,
)

__all__ = [
    "SAM_CHECKPOINTS",
    "SamCheckpoint",
    "SamWeightsUnavailableError",
    "download_sam_checkpoint",
    "get_sam_checkpoint",
    "load_sam_state_dict",
    "resolve_sam_weights",
    "sam_cache_dir",
    "verify_sam_checkpoint",
]
