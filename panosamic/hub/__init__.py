"""Hugging Face Hub integration: save / push / load PanoSAMic variants, export training checkpoints.

The mixin is imported by the model module; import the rest from their submodules
(``panosamic.hub.loading``, ``panosamic.hub.export``, ``panosamic.hub.push``, ``panosamic.hub.card``).
"""

from panosamic.hub.metadata import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, EvaluationResult, HubModelInfo
from panosamic.hub.mixin import PanoSAMicHubMixin

__all__ = [
    "CARD_NAME",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "EvaluationResult",
    "HubModelInfo",
    "PanoSAMicHubMixin",
]
