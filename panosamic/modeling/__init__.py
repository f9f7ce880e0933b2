"""The PanoSAMic network and its components (pure: imports no Hub, weights, inference,
training or CLI code). Users get models through :mod:`panosamic.model`."""

from panosamic.modeling.encoder import MultiStageImageEncoder
from panosamic.modeling.inference import InferenceOptions
from panosamic.modeling.panosamic import PanoSAMicNet
from panosamic.modeling.state_dict import check_state_dict, diagnose, infer_vit_size, load_state_dict_checked

__all__ = [
    "InferenceOptions",
    "MultiStageImageEncoder",
    "PanoSAMicNet",
    "check_state_dict",
    "diagnose",
    "infer_vit_size",
    "load_state_dict_checked",
]
