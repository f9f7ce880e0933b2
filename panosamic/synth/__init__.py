"""Synthetic panoramas: the renderer (:mod:`.render`), its looks (:mod:`.domains`) and the writer of the
raw Stanford2D3DS layout (:mod:`.stanford`, ``panosamic synth``) and of the raw ToF-360 layout (:mod:`.tof360`,
``panosamic synth --layout tof360``). numpy and PIL only (no torch)."""

from panosamic.data.stanford_codec import decode_semantic, encode_depth, encode_normals, encode_semantic
from panosamic.synth.domains import DEFAULT_DOMAIN, DOMAINS, SyntheticDomain, get_domain
from panosamic.synth.render import (
    DEFAULT_SIZE,
    MAX_INSTANCES_PER_ROOM,
    RenderedRoom,
    parse_size,
    ray_directions,
    render_room,
    room_seed,
)
from panosamic.synth.stanford import (
    DEFAULT_AREAS,
    SyntheticManifest,
    SyntheticSample,
    make_synthetic_stanford,
    sample_paths,
)
from panosamic.synth.tof360 import make_synthetic_tof360

__all__ = [
    "DEFAULT_AREAS",
    "DEFAULT_DOMAIN",
    "DEFAULT_SIZE",
    "DOMAINS",
    "MAX_INSTANCES_PER_ROOM",
    "RenderedRoom",
    "SyntheticDomain",
    "SyntheticManifest",
    "SyntheticSample",
    "decode_semantic",
    "encode_depth",
    "encode_normals",
    "encode_semantic",
    "get_domain",
    "make_synthetic_stanford",
    "make_synthetic_tof360",
    "parse_size",
    "ray_directions",
    "render_room",
    "room_seed",
    "sample_paths",
]
