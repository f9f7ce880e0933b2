"""Pinhole (perspective) datasets' files and cameras (torch-free).

Raw pinhole folder (what a user makes): the folder dataset's layout (:mod:`panosamic.data.folder_layout`)
with ordinary photos of any aspect ratio in ``images/``, and a field of view:

* ``panosamic prepare folder --pinhole --fov DEG``: the horizontal field of view of every photo;
* ``classes.json`` ``"fov_deg": DEG``: the same, stored with the data (``--fov`` overrides it);
* ``cameras.json`` (optional sidecar): ``{"NAME": {"fov_deg": 70}}`` or ``{"NAME": {"K": [[fx, 0, cx],
  [0, fy, cy], [0, 0, 1]]}}`` per photo (overrides both). ``K`` is in the photo's pixel units with pixel
  ``(i, j)``'s centre at ``(i + 0.5, j + 0.5)`` (a centred principal point is ``(w / 2, h / 2)``).

Prepared pinhole folder: the prepared folder layout (``classes.json``, ``splits.json``,
``samples/NAME/rgb.webp`` + ``labels.png``) whose ``dataset.json`` says ``"projection": "pinhole"``,
plus ``cameras.json`` with every photo's intrinsic matrix ``K`` at its prepared size. Image only (no
depth or normals).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

CAMERAS_FILE = "cameras.json"
PROJECTION = "pinhole"
#: Datasets ``panosamic prepare`` makes pinhole folders of (besides ``folder --pinhole``).
PINHOLE_DATASETS: tuple[str, ...] = ("stanford2d3ds-pinhole",)
#: Stanford2D3DS's perspective photos are 1080x1080; half of that is plenty for a 512x1024 canvas.
STANFORD_PINHOLE_DEFAULT_SCALE = 0.5


def check_fov(value: Any, where: str) -> float:
    """A horizontal field of view in degrees, in (0, 180)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 180:
        raise ValueError(f"{where}: field of view {value!r}; expected degrees in (0, 180), e.g. 60")
    return float(value)


def check_matrix(value: Any, where: str) -> list[list[float]]:
    """A 3x3 intrinsic matrix with positive focal lengths and no skew, as nested lists."""
    ok = (isinstance(value, list) and len(value) == 3
          and all(isinstance(r, list) and len(r) == 3 for r in value)
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                  for r in value for v in r))  # fmt: skip
    if not ok:
        raise ValueError(f"{where}: K {value!r}; expected [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]")
    k = [[float(v) for v in r] for r in value]
    if k[0][0] <= 0 or k[1][1] <= 0 or k[2] != [0.0, 0.0, 1.0] or k[1][0] != 0 or k[0][1] != 0:
        raise ValueError(
            f"{where}: K {value!r}; expected [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0"
        )
    return k


def matrix_from_fov(width: int, height: int, fov_deg: float) -> list[list[float]]:
    """K of a ``width x height`` photo with horizontal field of view ``fov_deg``, principal point centred."""
    f = (width / 2) / math.tan(math.radians(fov_deg) / 2)
    return [[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]]


def scale_matrix(k: list[list[float]], sx: float, sy: float) -> list[list[float]]:
    """K of the photo resized by (sx, sy) (continuous pixel coordinates scale exactly)."""
    return [[k[0][0] * sx, 0.0, k[0][2] * sx], [0.0, k[1][1] * sy, k[1][2] * sy], [0.0, 0.0, 1.0]]


def camera_matrix(entry: Any, width: int, height: int, where: str) -> list[list[float]]:
    """K of a ``cameras.json`` entry (``{"fov_deg": x}`` or ``{"K": [...]}``) of a ``width x height`` photo."""
    if not isinstance(entry, dict) or len(set(entry) & {"fov_deg", "K"}) != 1:
        raise ValueError(
            f'{where}: {entry!r}; expected {{"fov_deg": 60}} or {{"K": [[fx, 0, cx], [0, fy, cy], '
            "[0, 0, 1]]}"
        )
    if "K" in entry:
        return check_matrix(entry["K"], where)
    return matrix_from_fov(width, height, check_fov(entry["fov_deg"], where))


def is_pinhole_folder(root: Path) -> bool:
    """Whether a prepared folder holds pinhole photos (``dataset.json`` says ``"projection": "pinhole"``)."""
    import json

    path = Path(root) / "dataset.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("projection") == PROJECTION
    except (OSError, ValueError, AttributeError):
        return False


# --------------------------------------------------------------------------- training sources
#: ``--source`` kind of a prepared pinhole folder (the other kinds are the dataset names).
PINHOLE_SOURCE = "pinhole"


def parse_source(spec: str, dataset_names: tuple[str, ...]) -> tuple[str, str, float]:
    """``KIND=PATH[@WEIGHT]`` -> (kind, path, weight); kind is ``pinhole`` or a dataset name."""
    kind, sep, rest = str(spec).partition("=")
    kind = kind.strip().lower()
    kinds = (PINHOLE_SOURCE, *dataset_names)
    if not sep or not rest or kind not in kinds:
        raise ValueError(
            f"--source {spec!r}: expected KIND=PATH[@WEIGHT] with KIND one of {', '.join(kinds)}, "
            "e.g. pinhole=data/s2d3ds_pinhole@0.7"
        )
    path, at, weight_text = rest.rpartition("@") if "@" in rest else (rest, "", "")
    weight = 1.0
    if at:
        try:
            weight = float(weight_text)
        except ValueError:
            raise ValueError(
                f"--source {spec!r}: weight {weight_text!r}; expected a number > 0 after @"
            ) from None
        if not weight > 0 or not math.isfinite(weight):
            raise ValueError(f"--source {spec!r}: weight {weight_text!r}; expected a number > 0 after @")
    if not path:
        raise ValueError(f"--source {spec!r}: no path; expected KIND=PATH[@WEIGHT]")
    return kind, path, weight


def parse_range(text: str, flag: str, low: float, high: float) -> tuple[float, float]:
    """``"MIN,MAX"`` (or one number ``X`` for ``-X,X``) within [low, high]."""
    try:
        parts = [float(v) for v in str(text).split(",")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = [-abs(parts[0]), abs(parts[0])]
    if len(parts) != 2 or not low <= parts[0] <= parts[1] <= high:
        raise ValueError(f"{flag} {text!r}: expected MIN,MAX degrees with {low:g} <= MIN <= MAX <= {high:g}")
    return parts[0], parts[1]


# --------------------------------------------------------------------------- command-line flags
#: Flag -> (ProjectionSettings field, default text) of the projection of pinhole sources.
_RANGES = {"--pinhole-yaw": ("yaw_deg", "-180,180", 360.0), "--pinhole-pitch": ("pitch_deg", "-15,15", 90.0),
           "--pinhole-roll": ("roll_deg", "-5,5", 180.0)}  # fmt: skip
#: Flag -> (ProjectionSettings field, default, its other argparse keywords) of the other projection flags.
_OTHERS: dict[str, tuple[str, Any, dict[str, Any]]] = {
    "--pinhole-fov-jitter": ("fov_jitter_deg", 0.0, {
        "type": float, "metavar": "DEG", "help": "pinhole sources: field of view drawn within ± DEG of the photo's"}),
    "--photos-per-canvas": ("photos_per_canvas", 1, {
        "type": int, "metavar": "N", "help": "pinhole sources: N photos of the set on one canvas, at yaws 360/N apart"}),
    "--pinhole-placement": ("placement", "random", {
        "choices": ("random", "stretch"),
        "help": "random: projected as seen by the camera; stretch: resized onto the whole canvas (baseline)"}),
}  # fmt: skip


def add_pinhole_arguments(parser: Any, *, sources: bool = True) -> None:
    """``--source`` (repeatable) and the projection flags of pinhole sources (``sources=False``: adapt)."""
    title = "training sources: pinhole photos projected onto the panorama, mixed by weight"
    g = parser.add_argument_group(title if sources else "pinhole source: where its photos land on the panorama")
    if sources:
        g.add_argument(
            "--source",
            dest="sources",
            action="append",
            default=None,
            metavar="KIND=PATH[@W]",
            help="train on this prepared set instead of --dataset's training split (repeatable; mixed by "
            "weight W, default 1): KIND is pinhole (a `prepare folder --pinhole` or `prepare "
            "stanford2d3ds-pinhole` folder) or a dataset name; --dataset's test split validates",
        )
    for flag, (field, default, _) in _RANGES.items():
        g.add_argument(
            flag,
            dest=field,
            default=default,
            metavar="X|MIN,MAX",
            help=f"pinhole sources: random {field.split('_')[0]} of each photo on the canvas in degrees, "
            f"within ±X or [MIN, MAX] (a negative MIN needs {flag}=MIN,MAX)",
        )
    for flag, (field, default, keywords) in _OTHERS.items():
        g.add_argument(flag, dest=field, default=default, **keywords)


def projection_from_args(args: Any) -> dict[str, Any]:
    """The ProjectionSettings fields the flags of :func:`add_pinhole_arguments` give (checked)."""
    out: dict[str, Any] = {}
    for flag, (field, _, bound) in _RANGES.items():
        out[field] = parse_range(getattr(args, field), flag, -bound, bound)
    if not 0 <= args.fov_jitter_deg < 90:
        raise ValueError(f"--pinhole-fov-jitter must be in [0, 90) degrees, got {args.fov_jitter_deg:g}")
    if args.photos_per_canvas < 1:
        raise ValueError(f"--photos-per-canvas must be >= 1, got {args.photos_per_canvas}")
    out.update({field: getattr(args, field) for field, _, _ in _OTHERS.values()})
    return out


def projection_flags_given(args: Any) -> list[str]:
    """The projection flags set to other than their defaults."""
    flags = [(flag, field, default) for flag, (field, default, _) in (*_RANGES.items(), *_OTHERS.items())]
    return [flag for flag, field, default in flags if getattr(args, field) != default]


def check_source_args(args: Any, dataset_names: tuple[str, ...]) -> None:
    """``--source`` specs and the projection flags: one line for the first thing wrong."""
    specs = getattr(args, "sources", None) or []
    kinds = [parse_source(spec, dataset_names)[0] for spec in specs]
    projection_from_args(args)
    given = projection_flags_given(args)
    if given and PINHOLE_SOURCE not in kinds:
        raise ValueError(f"{given[0]}: only with a pinhole source (--source pinhole=PATH)")
