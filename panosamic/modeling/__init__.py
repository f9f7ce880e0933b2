"""The PanoSAMic network and its components (pure: imports no Hub, weights, inference,
training or CLI code). Users get models through :mod:`panosamic.model`.

``network`` (:class:`PanoSAMicNet`, preprocess -> encode -> fuse -> decode) is built from
``encoder`` (SAM's ViT, four global-attention stages), ``fusion`` and ``attention`` (MCBAM),
``decoder``, ``upsample`` and ``positional``; ``instance`` is SAM's automatic-mask branch and
``refinement`` its instance -> semantic post-processing; ``state_dict`` checks and diagnoses
checkpoints; ``protocol`` is what every model kind offers (:class:`SegmentationModel`).
"""

from panosamic.modeling.encoder import MultiStageImageEncoder
from panosamic.modeling.inference import InferenceOptions
from panosamic.modeling.network import PanoSAMicNet
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
