"""Open-vocabulary panoramas: name your classes and segment them with SAM 3 (``transformers``).

``panosamic.load_model("sam3", classes=["floor", "bed", "lamp"], views="cube")`` returns a
:class:`Sam3Segmenter` that the prediction, evaluation and distillation pipelines use like any
model. ``views``: "erp" (the whole panorama, the reference's zero-shot baseline), "cube" or
"tangent" (perspective views blended back onto the panorama). Needs the ``sam3`` extra.
"""

from panosamic.openvocab.classes import (
    CATCH_ALL_NAMES,
    MAX_CLASSES,
    ClassPrompts,
    parse_class_file,
    parse_class_list,
)
from panosamic.openvocab.loading import SAM3_MODELS, SAM3_REPO, is_sam3_checkpoint, load_sam3
from panosamic.openvocab.tiny import TINY_NAME

__all__ = [
    "CATCH_ALL_NAMES",
    "MAX_CLASSES",
    "SAM3_MODELS",
    "SAM3_REPO",
    "TINY_NAME",
    "ClassPrompts",
    "is_sam3_checkpoint",
    "load_sam3",
    "parse_class_file",
    "parse_class_list",
]
