"""PanoSAMic: semantic segmentation of 360° equirectangular panoramas with a frozen SAM encoder."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
