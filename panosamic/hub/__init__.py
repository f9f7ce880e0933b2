"""Hugging Face Hub integration: the model's Hub mixin (save / push to subfolders, model cards),
checkpoint file resolution, export of training checkpoints and upload of folders.

Sits above :mod:`panosamic.modeling`; models are loaded through :func:`panosamic.load_model`.
"""

from panosamic.hub.metadata import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, EvaluationResult
from panosamic.hub.mixin import PanoSAMicHubMixin

__all__ = ["CARD_NAME", "CONFIG_NAME", "WEIGHTS_NAME", "EvaluationResult", "PanoSAMicHubMixin"]
