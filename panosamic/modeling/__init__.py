"""The PanoSAMic model and its components."""

from panosamic.model.encoder import VIT_SPECS, MultiStageImageEncoder, ViTSpec, get_vit_spec
from panosamic.model.inference import InferenceOptions
from panosamic.model.panosamic import PanoSAMic
from panosamic.model.state_dict import FROZEN_PREFIXES, check_state_dict, diagnose, load_state_dict_checked

__all__ = [
    "FROZEN_PREFIXES",
    "InferenceOptions",
    "VIT_SPECS",
    "MultiStageImageEncoder",
    "PanoSAMic",
    "ViTSpec",
    "check_state_dict",
    "diagnose",
    "get_vit_spec",
    "load_state_dict_checked",
]
