"""The synthetic renderer: random indoor rooms ray cast into equirectangular panoramas.

Each room is an axis-aligned box with axis-aligned boxes inside it (furniture, columns, beams, and thin
slabs on the walls for doors, windows, boards; deeper ones for bookcases). Every pixel of an
equirectangular panorama is ray cast against them with vectorised numpy, and the nearest hit gives the
depth, normal, instance and class; RGB is a per-class base colour with procedural texture, noise and
Lambert-like shading from one ceiling light. Black unscanned caps around the poles mimic real scans.

Conventions (global frame = room frame, metres):

* ``x`` east, ``y`` north, ``z`` up; the room spans ``[0, Lx] x [0, Ly] x [0, Lz]``, the floor is ``z = 0``.
* Column ``u`` of a ``H x W`` panorama looks at the compass heading ``phi = 2 pi (u + 0.5) / W - pi``
  (clockwise from north: the centre column looks north, a quarter to the right looks east, the left and
  right edges look south); row ``v`` is at latitude ``lat = pi / 2 - pi (v + 0.5) / H`` (top row = up).
  The unit ray is ``(cos lat sin phi, cos lat cos phi, sin lat)``; see :func:`ray_directions`.
* Depth is the Euclidean distance from the camera centre along the ray (metres).
* Normals are unit surface normals in the global frame, facing the camera (``dot(n, ray) < 0``).

Classes are Stanford2D3DS's (:mod:`panosamic.data.stanford_codec`); the files are written by
:mod:`panosamic.synth.stanford`.
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from panosamic.data.stanford_codec import CLASS_NAMES, UNKNOWN_CLASS, sample_name
from panosamic.synth.domains import (
    BOOKS as _BOOKS,
    DEFAULT_DOMAIN,
    FABRIC as _FABRIC,
    PLAIN as _PLAIN,
    PLANKS as _PLANKS,
    TILES as _TILES,
    WINDOW as _WINDOW,
    SyntheticDomain,
    get_domain,
)

#: Size (height, width) of the real panoramas.
DEFAULT_SIZE: tuple[int, int] = (2048, 4096)
#: ``instance_index`` value of missing (unscanned) pixels in :class:`RenderedRoom`.
MISSING_INSTANCE: int = -1
#: Upper bound of the labelled instances of one room (shell 6, wall objects 11, beams 2, furniture 14).
MAX_INSTANCES_PER_ROOM: int = 33
#: Smallest panorama height accepted.
MIN_HEIGHT: int = 8
#: Rows ray cast / coloured at a time (bounds the memory of 2048 x 4096 panoramas).
_BAND_ROWS: int = 256

# Room types (with relative frequency, roughly as in the real dataset) and size ranges (metres).
_ROOM_TYPES: tuple[tuple[str, float], ...] = (
    ("office", 0.45), ("hallway", 0.15), ("conferenceRoom", 0.1), ("storage", 0.06), ("WC", 0.05),
    ("lobby", 0.05), ("lounge", 0.05), ("pantry", 0.04), ("copyRoom", 0.03), ("openspace", 0.02),
)  # fmt: skip


@dataclass(frozen=True)
class RenderedRoom:
    """One rendered panorama, in memory.

    ``instance_index`` is room-local: 0 = ``<UNK>``, ``1..len(instance_classes) - 1`` = the room's objects,
    -1 = missing (unscanned). ``class_map`` holds training indices 0..12, -1 for ``<UNK>`` and missing.
    """

    rgb: np.ndarray  # uint8 H x W x 3
    depth_m: np.ndarray  # float32 H x W, nan where missing
    normals: np.ndarray  # float32 H x W x 3, nan where missing
    instance_index: np.ndarray  # int32 H x W
    class_map: np.ndarray  # int64 H x W
    room_name: str  # e.g. "office_1"
    camera_id: str  # 32 lowercase hex digits
    room_type: str
    room_number: int
    instance_classes: tuple[str, ...]  # local instance index -> class name ("<UNK>" at 0)
    room_size: tuple[float, float, float]  # (Lx, Ly, Lz)
    camera_position: tuple[float, float, float]  # (x, y, z) in the room frame
    cap_latitudes_deg: tuple[float, float]  # (top, bottom): pixels with |lat| beyond 90 - cap are missing

    @property
    def sample_name(self) -> str:
        """The file stem of the raw dataset, ``camera_<id>_<room>_frame_equirectangular_domain``."""
        return sample_name(self.camera_id, self.room_name)


# --------------------------------------------------------------------------------------------------
# Scene description
# --------------------------------------------------------------------------------------------------

_CLASS_TO_INDEX = {name: i for i, name in enumerate(CLASS_NAMES)}


@dataclass
class _Object:
    """One instance: a class, one or more boxes, and its look."""

    cls: str  # a CLASS_NAMES entry or UNKNOWN_CLASS
    boxes: list[tuple[np.ndarray, np.ndarray]]  # (lo, hi) corners
    color: np.ndarray  # 3 floats in 0..1
    texture: int
    scale: float  # texture scale (metres)


class _Layout:
    """Random room layout: shell, camera and objects (no pixels yet)."""

    def __init__(self, rng: np.random.Generator, domain: SyntheticDomain = DEFAULT_DOMAIN):
        r = rng
        self.rng = rng
        self.domain = domain
        names = [n for n, _ in _ROOM_TYPES]
        p = np.array([w for _, w in _ROOM_TYPES])
        self.room_type = names[int(r.choice(len(names), p=p / p.sum()))]
        if self.room_type == "hallway":
            lx, ly = r.uniform(2.0, 3.2), r.uniform(6.0, 14.0)
        elif self.room_type in ("WC", "storage", "copyRoom", "pantry"):
            lx, ly = r.uniform(2.4, 4.5), r.uniform(2.6, 5.0)
        else:
            lx, ly = r.uniform(3.5, 9.0), r.uniform(3.5, 8.0)
        if r.random() < 0.5:
            lx, ly = ly, lx
        lz = r.uniform(2.6, 3.8)
        self.size = np.array([lx, ly, lz])
        margin = 0.9
        self.camera = np.array(
            [r.uniform(margin, lx - margin), r.uniform(margin, ly - margin), r.uniform(*domain.camera_height_m)]
        )
        self.caps_deg = (float(r.uniform(*domain.cap_top_deg)), float(r.uniform(*domain.cap_bottom_deg)))
        self.light = np.array([r.uniform(0.25, 0.75) * lx, r.uniform(0.25, 0.75) * ly, lz - r.uniform(0.5, 0.9)])
        self.ambient = float(r.uniform(*domain.ambient))
        self.objects: list[_Object] = []
        self.wall_used: list[list[tuple[float, float]]] = [[], [], [], []]  # per wall: occupied intervals
        self.floor_used: list[tuple[float, float, float, float]] = []  # x0, y0, x1, y1
        self.table_tops: list[tuple[float, float, float, float, float]] = []  # x0, y0, x1, y1, z

        # The shell: floor, ceiling, four walls (west, east, south, north), one instance each.
        zero = np.zeros(3)
        self._add("floor", [(zero, np.array([lx, ly, 0.0]))])
        self._add("ceiling", [(np.array([0.0, 0.0, lz]), self.size.copy())])
        for _ in range(4):
            self._add("wall", [])
        self.wall_color = self.objects[2].color
        for o in self.objects[3:6]:  # walls of a room share a paint, give or take
            o.color = np.clip(self.wall_color * r.uniform(0.93, 1.07, 3), 0.03, 1.0)
        self.shell = self.objects[:]

        self._place_wall_objects()
        self._place_beams()
        self._place_furniture()

    # ---- helpers -------------------------------------------------------------------------------
    def _add(self, cls: str, boxes: list[tuple[np.ndarray, np.ndarray]]) -> _Object:
        r = self.rng
        style = self.domain.style
        if cls in style:
            palette, textures = style[cls]
            base = np.array(palette[int(r.integers(len(palette)))])
            texture = int(textures[int(r.integers(len(textures)))])
        else:  # clutter and unknown things: anything goes
            base = r.uniform(0.1, 0.9, 3)
            texture = int(r.choice([_PLAIN, _FABRIC, _PLANKS]))
        color = np.clip(base * r.uniform(0.85, 1.15) + r.normal(0, 0.03, 3), 0.03, 1.0)
        obj = _Object(cls, boxes, color, texture, float(r.uniform(0.08, 0.3)) * self.domain.texture_scale)
        self.objects.append(obj)
        return obj

    def _wall_box(self, wall: int, s: float, w: float, z0: float, z1: float, dep: float):
        lx, ly, _ = self.size
        if wall == 0:
            return np.array([0.0, s, z0]), np.array([dep, s + w, z1])
        if wall == 1:
            return np.array([lx - dep, s, z0]), np.array([lx, s + w, z1])
        if wall == 2:
            return np.array([s, 0.0, z0]), np.array([s + w, dep, z1])
        return np.array([s, ly - dep, z0]), np.array([s + w, ly, z1])

    def _wall_slot(self, width: float, gap: float = 0.1) -> tuple[int, float] | None:
        """A free interval of ``width`` metres on a random wall, or None."""
        r = self.rng
        for _ in range(20):
            wall = int(r.integers(4))
            length = self.size[1] if wall < 2 else self.size[0]
            if length < width + 2 * gap:
                continue
            s = float(r.uniform(gap, length - width - gap))
            if all(s + width + gap <= a or s >= b + gap for a, b in self.wall_used[wall]):
                self.wall_used[wall].append((s, s + width))
                return wall, s
        return None

    def _floor_slot(self, w: float, d: float, gap: float = 0.05) -> tuple[float, float] | None:
        """A free floor rectangle ``w x d`` away from walls objects, other furniture and the camera."""
        r = self.rng
        lx, ly, _ = self.size
        if lx < w + 0.2 or ly < d + 0.2:
            return None
        cx, cy = self.camera[:2]
        for _ in range(30):
            x0, y0 = float(r.uniform(0.1, lx - w - 0.1)), float(r.uniform(0.1, ly - d - 0.1))
            x1, y1 = x0 + w, y0 + d
            dx, dy = max(x0 - cx, 0.0, cx - x1), max(y0 - cy, 0.0, cy - y1)
            if dx * dx + dy * dy < 0.6**2:  # keep the camera (tripod) free
                continue
            if any(x0 < b[2] + gap and b[0] < x1 + gap and y0 < b[3] + gap and b[1] < y1 + gap for b in self.floor_used):
                continue
            self.floor_used.append((x0, y0, x1, y1))
            return x0, y0
        return None

    # ---- objects -------------------------------------------------------------------------------
    def _place_wall_objects(self) -> None:
        r = self.rng
        lz = self.size[2]
        # Columns first (they protrude most), then doors, bookcases, windows, boards.
        for _ in range(int(r.integers(0, 3))):
            w, dep = r.uniform(0.35, 0.7), r.uniform(0.25, 0.55)
            slot = self._wall_slot(w, gap=0.0)
            if slot:
                lo, hi = self._wall_box(slot[0], slot[1], w, 0.0, lz, dep)
                col = self._add("column", [(lo, hi)])
                if r.random() < 0.5:  # painted like the walls
                    col.color = self.wall_color.copy()
                self._reserve_floor(lo, hi)
        specs = (
            # class, count range, width, (z0 range), height, depth
            ("door", (1, 3), (0.8, 1.0), (0.0, 0.0), (2.0, 2.2), (0.03, 0.06)),
            ("bookcase", (0, 3), (0.8, 1.8), (0.0, 0.0), (1.6, 2.2), (0.3, 0.45)),
            ("window", (0, 4), (0.8, 2.0), (0.8, 1.1), (1.0, 1.5), (0.02, 0.05)),
            ("board", (0, 3), (1.2, 3.0), (0.9, 1.2), (0.9, 1.3), (0.02, 0.04)),
        )
        for cls, (n0, n1), wr, zr, hr, dr in specs:
            for _ in range(int(r.integers(n0, n1))):
                w = float(r.uniform(*wr))
                z0 = float(r.uniform(*zr))
                z1 = min(z0 + float(r.uniform(*hr)), lz - 0.15)
                dep = float(r.uniform(*dr))
                slot = self._wall_slot(w)
                if slot:
                    lo, hi = self._wall_box(slot[0], slot[1], w, z0, z1, dep)
                    self._add(cls, [(lo, hi)])
                    if cls == "bookcase":
                        self._reserve_floor(lo, hi)

    def _reserve_floor(self, lo: np.ndarray, hi: np.ndarray) -> None:
        self.floor_used.append((float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])))

    def _place_beams(self) -> None:
        r = self.rng
        lx, ly, lz = self.size
        for _ in range(int(r.integers(0, 3))):
            w, dep = r.uniform(0.2, 0.4), r.uniform(0.2, 0.45)
            if r.random() < 0.5:  # spans x
                y = r.uniform(0.3, ly - 0.3 - w)
                box = (np.array([0.0, y, lz - dep]), np.array([lx, y + w, lz]))
            else:
                x = r.uniform(0.3, lx - 0.3 - w)
                box = (np.array([x, 0.0, lz - dep]), np.array([x + w, ly, lz]))
            beam = self._add("beam", [box])
            if r.random() < 0.5:
                beam.color = self.wall_color.copy()

    def _place_furniture(self) -> None:
        r = self.rng
        for _ in range(int(r.integers(1, 3))):
            self._table(float(r.uniform(0.8, 2.0)), float(r.uniform(0.6, 1.0)))
        for _ in range(int(r.integers(1, 5))):
            self._chair()
        for _ in range(int(r.integers(0, 2)) if self.room_type != "lounge" else 2):
            self._sofa()
        for _ in range(int(r.integers(2, 7))):
            self._small_box("clutter")
        for _ in range(int(r.integers(1, 3))):
            self._small_box(UNKNOWN_CLASS)

    def _table(self, w: float, d: float) -> None:
        r = self.rng
        if r.random() < 0.5:
            w, d = d, w
        slot = self._floor_slot(w, d)
        if slot is None:
            return
        x0, y0 = slot
        top = float(r.uniform(0.72, 0.76))
        leg = 0.05
        boxes = [(np.array([x0, y0, top - 0.04]), np.array([x0 + w, y0 + d, top]))]
        for lx_, ly_ in ((x0 + 0.03, y0 + 0.03), (x0 + w - 0.03 - leg, y0 + 0.03),
                         (x0 + 0.03, y0 + d - 0.03 - leg), (x0 + w - 0.03 - leg, y0 + d - 0.03 - leg)):  # fmt: skip
            boxes.append((np.array([lx_, ly_, 0.0]), np.array([lx_ + leg, ly_ + leg, top - 0.04])))
        self._add("table", boxes)
        self.table_tops.append((x0, y0, x0 + w, y0 + d, top))

    def _chair(self) -> None:
        r = self.rng
        s = float(r.uniform(0.42, 0.5))
        slot = self._floor_slot(s, s)
        if slot is None:
            return
        x0, y0 = slot
        seat = float(r.uniform(0.42, 0.48))
        back = seat + float(r.uniform(0.4, 0.5))
        leg, t = 0.04, 0.05
        boxes = [(np.array([x0, y0, seat - t]), np.array([x0 + s, y0 + s, seat]))]
        side = int(r.integers(4))
        bx0, by0 = (x0, y0) if side in (0, 2) else ((x0 + s - t, y0) if side == 1 else (x0, y0 + s - t))
        bw, bd = (t, s) if side in (0, 1) else (s, t)
        boxes.append((np.array([bx0, by0, seat]), np.array([bx0 + bw, by0 + bd, back])))
        for lx_, ly_ in ((x0, y0), (x0 + s - leg, y0), (x0, y0 + s - leg), (x0 + s - leg, y0 + s - leg)):
            boxes.append((np.array([lx_, ly_, 0.0]), np.array([lx_ + leg, ly_ + leg, seat - t])))
        self._add("chair", boxes)

    def _sofa(self) -> None:
        r = self.rng
        w, d = float(r.uniform(1.6, 2.2)), float(r.uniform(0.8, 0.95))
        along_x = r.random() < 0.5
        sw, sd = (w, d) if along_x else (d, w)
        slot = self._floor_slot(sw, sd)
        if slot is None:
            return
        x0, y0 = slot
        base, back, arm = float(r.uniform(0.38, 0.45)), float(r.uniform(0.8, 0.9)), 0.6
        boxes = [(np.array([x0, y0, 0.0]), np.array([x0 + sw, y0 + sd, base]))]
        if along_x:  # back along the far y side, arms at both x ends
            boxes.append((np.array([x0, y0 + sd - 0.2, base]), np.array([x0 + sw, y0 + sd, back])))
            boxes.append((np.array([x0, y0, base]), np.array([x0 + 0.15, y0 + sd, arm])))
            boxes.append((np.array([x0 + sw - 0.15, y0, base]), np.array([x0 + sw, y0 + sd, arm])))
        else:
            boxes.append((np.array([x0 + sw - 0.2, y0, base]), np.array([x0 + sw, y0 + sd, back])))
            boxes.append((np.array([x0, y0, base]), np.array([x0 + sw, y0 + 0.15, arm])))
            boxes.append((np.array([x0, y0 + sd - 0.15, base]), np.array([x0 + sw, y0 + sd, arm])))
        self._add("sofa", boxes)

    def _small_box(self, cls: str) -> None:
        r = self.rng
        w, d, h = (float(v) for v in r.uniform((0.1, 0.1, 0.08), (0.5, 0.5, 0.6)))
        if self.table_tops and r.random() < 0.5:  # on a table
            x0, y0, x1, y1, z = self.table_tops[int(r.integers(len(self.table_tops)))]
            w, d = min(w, x1 - x0), min(d, y1 - y0)
            px, py = float(r.uniform(x0, x1 - w)), float(r.uniform(y0, y1 - d))
            self._add(cls, [(np.array([px, py, z]), np.array([px + w, py + d, z + min(h, 0.35)]))])
            return
        slot = self._floor_slot(w, d)
        if slot is not None:
            px, py = slot
            self._add(cls, [(np.array([px, py, 0.0]), np.array([px + w, py + d, h]))])


# --------------------------------------------------------------------------------------------------
# Ray casting
# --------------------------------------------------------------------------------------------------


def check_size(size: Sequence[int]) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise TypeError(f"size must be (height, width), got {size!r}") from None
    if h < MIN_HEIGHT or w != 2 * h:
        raise ValueError(f"size must be (H, 2H) with H >= {MIN_HEIGHT} (equirectangular 1:2), got {(h, w)}")
    return h, w


@functools.lru_cache(maxsize=4)
def _directions(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unit rays H x W x 3, latitude per row, heading per column), float32/float64, read-only."""
    lat = np.pi / 2 - np.pi * (np.arange(h) + 0.5) / h
    phi = 2 * np.pi * (np.arange(w) + 0.5) / w - np.pi
    cl = np.cos(lat)[:, None]
    d = np.stack(
        [cl * np.sin(phi)[None, :], cl * np.cos(phi)[None, :], np.broadcast_to(np.sin(lat)[:, None], (h, w))], -1
    ).astype(np.float32)
    d.flags.writeable = False
    return d, lat, phi


def ray_directions(size: Sequence[int]) -> np.ndarray:
    """Unit ray of every pixel, float32 ``H x W x 3`` in the global frame (see the module docstring)."""
    h, w = check_size(size)
    return _directions(h, w)[0]


def _angular_blocks(lo: np.ndarray, hi: np.ndarray, cam: np.ndarray, h: int, w: int) -> Iterator[tuple[slice, slice]]:
    """Conservative (rows, cols) pixel blocks that can see the box ``[lo, hi]`` from ``cam`` (outside it)."""
    a, b = lo - cam, hi - cam
    nx, ny = min(max(0.0, a[0]), b[0]), min(max(0.0, a[1]), b[1])  # nearest footprint point
    rho_min = float(np.hypot(nx, ny))
    rho_max = max(float(np.hypot(x, y)) for x in (a[0], b[0]) for y in (a[1], b[1]))
    lat_max = np.arctan2(b[2], rho_min if b[2] > 0 else rho_max)
    lat_min = np.arctan2(a[2], rho_max if a[2] > 0 else rho_min)
    r0 = max(int(np.floor((np.pi / 2 - lat_max) * h / np.pi - 0.5)) - 1, 0)
    r1 = min(int(np.ceil((np.pi / 2 - lat_min) * h / np.pi - 0.5)) + 2, h)
    if r0 >= r1:
        return
    rows = slice(r0, r1)
    if rho_min <= 1e-9:  # camera above or below the box: any heading
        yield rows, slice(0, w)
        return
    ref = np.arctan2(nx, ny)
    rel = [(np.arctan2(x, y) - ref + np.pi) % (2 * np.pi) - np.pi for x in (a[0], b[0]) for y in (a[1], b[1])]
    c0 = int(np.floor((ref + min(rel) + np.pi) * w / (2 * np.pi) - 0.5)) - 1
    c1 = int(np.ceil((ref + max(rel) + np.pi) * w / (2 * np.pi) - 0.5)) + 2
    if c1 - c0 >= w:
        yield rows, slice(0, w)
    elif c0 < 0:
        yield rows, slice(0, c1)
        yield rows, slice(c0 % w, w)
    elif c1 > w:
        yield rows, slice(c0, w)
        yield rows, slice(0, c1 - w)
    else:
        yield rows, slice(c0, c1)


def _cast(layout: _Layout, h: int, w: int, rays: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit per pixel: (distance float32, object index int16, hit axis int8). ``rays``: unit rays
    (h, w, 3) of another camera (a pinhole view; every box tested against every pixel), else the panorama's."""
    d = _directions(h, w)[0] if rays is None else rays
    cam = layout.camera.astype(np.float32)
    inv = np.float32(1.0) / np.where(d == 0, np.float32(1e-30), d)
    # Shell (inside the room box): exit distance along each axis, the smallest wins.
    # object 0 = floor, 1 = ceiling, 2..5 = walls west, east, south, north
    dist = np.full((h, w), np.inf, np.float32)
    axis = np.zeros((h, w), np.int8)
    obj = np.zeros((h, w), np.int16)
    first_obj = (2, 4, 0)  # object hit along -x, -y, -z; +1 along the positive direction
    for a in range(3):
        positive = d[..., a] > 0
        t = np.where(positive, np.float32(layout.size[a]) - cam[a], -cam[a]) * inv[..., a]
        closer = t < dist
        dist[closer] = t[closer]
        axis[closer] = a
        obj[closer] = first_obj[a] + positive[closer]
    # Boxes (camera outside all of them): slab test, only where the box can be seen.
    for k, o in enumerate(layout.objects):
        if k < len(layout.shell):
            continue
        for lo, hi in o.boxes:
            lo32, hi32 = (lo - layout.camera).astype(np.float32), (hi - layout.camera).astype(np.float32)
            blocks = _angular_blocks(lo, hi, layout.camera, h, w) if rays is None else [(slice(0, h), slice(0, w))]
            for rows, cols in blocks:
                if rows.stop - rows.start > _BAND_ROWS:  # bound the temporaries
                    for r0 in range(rows.start, rows.stop, _BAND_ROWS):
                        _hit_box(lo32, hi32, k, inv, dist, obj, axis, slice(r0, min(r0 + _BAND_ROWS, rows.stop)), cols)
                else:
                    _hit_box(lo32, hi32, k, inv, dist, obj, axis, rows, cols)
    return dist, obj, axis


def _hit_box(
    lo: np.ndarray,
    hi: np.ndarray,
    k: int,
    inv: np.ndarray,
    dist: np.ndarray,
    obj: np.ndarray,
    axis: np.ndarray,
    rows: slice,
    cols: slice,
) -> None:
    """Slab test of box ``[lo, hi]`` (camera-relative) on a pixel block; keep it where it is the nearest."""
    ib = inv[rows, cols]
    t1, t2 = lo * ib, hi * ib
    tmin = np.minimum(t1, t2)
    tnear = tmin.max(-1)
    tfar = np.maximum(t1, t2).min(-1)
    db = dist[rows, cols]  # views: writing into them writes into the full buffers
    hit = (tnear <= tfar) & (tnear > 0) & (tnear < db)
    if not hit.any():
        return
    db[hit] = tnear[hit]
    obj[rows, cols][hit] = k
    axis[rows, cols][hit] = tmin.argmax(-1).astype(np.int8)[hit]


# --------------------------------------------------------------------------------------------------
# Texturing and shading
# --------------------------------------------------------------------------------------------------


def _hash01(ix: np.ndarray, iy: np.ndarray, salt: np.ndarray | int) -> np.ndarray:
    """Deterministic pseudo-random float32 in [0, 1) per integer lattice point (and salt)."""
    x = (ix.astype(np.int64) * 73856093) ^ (iy.astype(np.int64) * 19349663) ^ (np.asarray(salt, np.int64) * 83492791)
    x = (x & 0xFFFFFFFF).astype(np.uint32)
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    return (x >> np.uint32(8)).astype(np.float32) / np.float32(1 << 24)


def _value_noise(u: np.ndarray, v: np.ndarray, salt: np.ndarray | int) -> np.ndarray:
    """Bilinear value noise in [0, 1) over the plane (u, v) (lattice step 1)."""
    fu, fv = np.floor(u), np.floor(v)
    iu, iv = fu.astype(np.int64), fv.astype(np.int64)
    su, sv = u - fu, v - fv
    su, sv = su * su * (3 - 2 * su), sv * sv * (3 - 2 * sv)
    n00, n10 = _hash01(iu, iv, salt), _hash01(iu + 1, iv, salt)
    n01, n11 = _hash01(iu, iv + 1, salt), _hash01(iu + 1, iv + 1, salt)
    return (n00 * (1 - su) + n10 * su) * (1 - sv) + (n01 * (1 - su) + n11 * su) * sv


def _albedo(obj: np.ndarray, u: np.ndarray, v: np.ndarray, layout: _Layout, salt0: int) -> np.ndarray:
    """Per-pixel albedo (N x 3, 0..1) for the hit pixels ``obj`` with in-plane coordinates (u, v)."""
    colors = np.array([o.color for o in layout.objects], np.float32)
    kinds = np.array([o.texture for o in layout.objects], np.int8)
    scales = np.array([o.scale for o in layout.objects], np.float32)
    salt = obj.astype(np.int64) + salt0
    base = colors[obj]
    kind = kinds[obj]
    sc = scales[obj]
    # Low-frequency mottling everywhere.
    tex = 0.85 + 0.3 * _value_noise(u / (3 * sc), v / (3 * sc), salt)
    out = base * tex[:, None]
    m = kind == _PLANKS  # boards of random brightness along u, fine grain along them
    if m.any():
        pw = 0.5 * sc[m] + 0.05
        plank = np.floor(u[m] / pw)
        shade = 0.8 + 0.4 * _hash01(plank.astype(np.int64), np.zeros_like(plank, np.int64), salt[m])
        grain = 0.9 + 0.2 * _value_noise(u[m] * 60, v[m] * 4, salt[m] + 7)
        edge = np.where(np.abs(u[m] / pw - plank - 0.5) > 0.47, 0.6, 1.0)
        out[m] *= (shade * grain * edge)[:, None]
    m = kind == _TILES  # grid of dark joints
    if m.any():
        t = 0.3 + 2 * sc[m]
        ju, jv = np.abs((u[m] / t) % 1 - 0.5), np.abs((v[m] / t) % 1 - 0.5)
        out[m] *= np.where((ju > 0.48) | (jv > 0.48), 0.65, 1.0)[:, None]
    m = kind == _BOOKS  # shelves with rows of coloured books
    if m.any():
        shelf = np.floor(v[m] / 0.38)
        inshelf = (v[m] / 0.38) % 1
        book = np.floor(u[m] / 0.045)
        rnd = np.stack([_hash01(book.astype(np.int64), shelf.astype(np.int64), salt[m] + c) for c in range(3)], -1)
        books = 0.15 + 0.7 * rnd
        is_book = (inshelf > 0.1) & (inshelf < 0.1 + 0.75 * (0.7 + 0.3 * rnd[:, 0]))
        out[m] = np.where(is_book[:, None], books, out[m])
    m = kind == _WINDOW  # bright panes with dark mullions
    if m.any():
        pu, pv = np.abs((u[m] / 0.6) % 1 - 0.5), np.abs((v[m] / 0.7) % 1 - 0.5)
        out[m] *= np.where((pu > 0.45) | (pv > 0.45), 0.35, 1.0)[:, None]
    m = kind == _FABRIC  # fine weave noise
    if m.any():
        out[m] *= (0.85 + 0.3 * _value_noise(u[m] * 150, v[m] * 150, salt[m] + 3))[:, None]
    return out


def _radiance_band(
    layout: _Layout,
    d: np.ndarray,
    dist: np.ndarray,
    obj: np.ndarray,
    axis: np.ndarray,
    normals: np.ndarray,
    salt0: int,
) -> np.ndarray:
    """float32 RGB (0..255 scale) of a band of rows: textured albedo, Lambert shading from the light."""
    p = layout.camera.astype(np.float32) + d * dist[..., None]
    # In-plane coordinates of the hit point: horizontal (x, y); x-facing (y, z); y-facing (x, z).
    u = np.where(axis == 0, p[..., 1], p[..., 0])
    v = np.where(axis == 2, p[..., 1], p[..., 2])
    albedo = _albedo(obj.ravel(), u.ravel(), v.ravel(), layout, salt0).reshape(d.shape)
    to_light = layout.light.astype(np.float32) - p
    ldist = np.linalg.norm(to_light, axis=-1) + np.float32(1e-6)
    lambert = np.clip((normals * to_light).sum(-1) / ldist, 0, None)
    shade = layout.ambient + layout.domain.light_gain * (1.1 - layout.ambient) * lambert / (1 + (ldist / 4.0) ** 2)
    kinds = np.array([o.texture for o in layout.objects])
    window = kinds[obj] == _WINDOW
    shade = np.where(window, np.maximum(shade, 1.0), shade)  # daylight through windows
    dom = layout.domain
    lamp = dom.light_rgb * np.float32(dom.exposure)  # ones in the default domain: exact no-op
    gain = np.where(window[..., None], np.float32(dom.exposure), lamp)
    return albedo * shade[..., None] * 255 * gain


def _sensor(radiance: np.ndarray, noise: np.ndarray, domain: SyntheticDomain) -> np.ndarray:
    """uint8 RGB from radiance: tone curve, additive sensor noise, 8-bit quantisation (2..255)."""
    if domain.gamma != 1.0:
        radiance = np.float32(255) * np.clip(radiance / np.float32(255), 0, None) ** np.float32(1 / domain.gamma)
    rgb = radiance + domain.noise_std * noise
    return np.clip(np.rint(rgb), 2, 255).astype(np.uint8)  # 0 stays reserved for the unscanned caps


def _blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Separable Gaussian blur of an H x W x C float image (wraps around horizontally, reflects vertically)."""
    radius = max(int(np.ceil(3 * sigma_px)), 1)
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-0.5 * (x / np.float32(sigma_px)) ** 2)
    k /= k.sum()
    h = image.shape[0]
    rows = np.clip(np.arange(-radius, h + radius), 0, h - 1)  # edge padding
    padded = image[rows]
    out = sum(k[i] * padded[i : i + h] for i in range(len(k)))
    out = sum(k[i] * np.roll(out, radius - i, axis=1) for i in range(len(k)))
    return out.astype(np.float32)


def _colour(layout: _Layout, rng: np.random.Generator, d: np.ndarray, dist: np.ndarray, obj: np.ndarray,
            axis: np.ndarray, normals: np.ndarray, salt0: int, px_per_deg: float | None = None) -> np.ndarray:
    """uint8 RGB of the panorama, in bands of rows to bound memory (pixel noise drawn band by band, in order).

    With optical blur the radiance of the whole panorama is blurred before the sensor noise is added.
    """
    h, w = dist.shape
    dom = layout.domain
    bands = [slice(r0, min(r0 + _BAND_ROWS, h)) for r0 in range(0, h, _BAND_ROWS)]
    rgb = np.zeros((h, w, 3), np.uint8)
    if dom.blur_sigma_deg > 0:
        radiance = np.concatenate(
            [_radiance_band(layout, d[b], dist[b], obj[b], axis[b], normals[b], salt0) for b in bands]
        )
        radiance = _blur(radiance, dom.blur_sigma_deg * (h / 180.0 if px_per_deg is None else px_per_deg))
        for b in bands:
            rgb[b] = _sensor(radiance[b], rng.standard_normal((b.stop - b.start, w, 3), dtype=np.float32), dom)
        return rgb
    for b in bands:
        noise = rng.standard_normal((b.stop - b.start, w, 3), dtype=np.float32)
        rgb[b] = _sensor(_radiance_band(layout, d[b], dist[b], obj[b], axis[b], normals[b], salt0), noise, dom)
    return rgb


def _generator(rng_or_seed: np.random.Generator | np.random.SeedSequence | int) -> np.random.Generator:
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    if isinstance(rng_or_seed, (np.random.SeedSequence, int, np.integer)) and not isinstance(rng_or_seed, bool):
        if isinstance(rng_or_seed, (int, np.integer)) and rng_or_seed < 0:
            raise ValueError(f"seed must be >= 0, got {rng_or_seed}")
        return np.random.default_rng(rng_or_seed)
    raise TypeError(f"rng_or_seed must be a numpy Generator, SeedSequence or int, got {type(rng_or_seed).__name__}")


def _instance_tables(layout: _Layout) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(object -> local instance index, local instance -> class name, local instance -> class index)."""
    local_of_obj = np.zeros(len(layout.objects), np.int32)
    classes = [UNKNOWN_CLASS]
    for k, o in enumerate(layout.objects):
        if o.cls != UNKNOWN_CLASS:
            local_of_obj[k] = len(classes)
            classes.append(o.cls)
    class_of_local = np.array([-1] + [_CLASS_TO_INDEX[c] for c in classes[1:]], np.int64)
    return local_of_obj, classes, class_of_local


def render_room(
    rng_or_seed: np.random.Generator | np.random.SeedSequence | int,
    size: Sequence[int] = DEFAULT_SIZE,
    *,
    room_number: int = 1,
    domain: str | SyntheticDomain | None = None,
) -> RenderedRoom:
    """Render one random room as an equirectangular panorama of ``size = (H, W)`` (W = 2H).

    The layout (room, camera, objects, camera id) is drawn first, so the same seed gives the same room
    at any size; then pixel noise. ``room_number`` only names the room (``<roomType>_<room_number>``).
    ``domain``: the look (a :data:`DOMAINS` name or a :class:`SyntheticDomain`; default: the original one).
    """
    rng = _generator(rng_or_seed)
    h, w = check_size(size)
    if not isinstance(room_number, (int, np.integer)) or room_number < 0:
        raise ValueError(f"room_number must be an int >= 0, got {room_number!r}")

    camera_id = "".join(f"{int(b):02x}" for b in rng.integers(0, 256, 16))
    layout = _Layout(rng, get_domain(domain))
    salt0 = int(rng.integers(0, 1 << 30))

    d, lat, _ = _directions(h, w)
    dist, obj, axis = _cast(layout, h, w)

    # Unscanned caps.
    top, bottom = layout.caps_deg
    lat_deg = np.degrees(lat)
    cap_rows = (lat_deg > 90 - top) | (lat_deg < -(90 - bottom))
    valid = np.broadcast_to(~cap_rows[:, None], (h, w))

    # Normals: axis-aligned, facing the camera.
    sign = -np.sign(np.take_along_axis(d, axis[..., None].astype(np.intp), -1)[..., 0])
    normals = np.zeros((h, w, 3), np.float32)
    np.put_along_axis(normals, axis[..., None].astype(np.intp), sign[..., None], -1)

    rgb = _colour(layout, rng, d, dist, obj, axis, normals, salt0)
    rgb[cap_rows] = 0

    local_of_obj, classes, class_of_local = _instance_tables(layout)
    instance = np.where(valid, local_of_obj[obj], MISSING_INSTANCE).astype(np.int32)
    class_map = np.where(valid, class_of_local[np.maximum(instance, 0)], -1).astype(np.int64)
    depth = np.where(valid, dist, np.nan).astype(np.float32)
    normals[~valid] = np.nan

    return RenderedRoom(
        rgb=rgb,
        depth_m=depth,
        normals=normals,
        instance_index=instance,
        class_map=class_map,
        room_name=f"{layout.room_type}_{int(room_number)}",
        camera_id=camera_id,
        room_type=layout.room_type,
        room_number=int(room_number),
        instance_classes=tuple(classes),
        room_size=tuple(float(s) for s in layout.size),
        camera_position=tuple(float(c) for c in layout.camera),
        cap_latitudes_deg=layout.caps_deg,
    )


def room_seed(seed: int, area: str, room_index: int) -> np.random.SeedSequence:
    """The seed of one room of a dataset: independent of the other rooms, stable across runs and platforms."""
    return np.random.SeedSequence([int(seed), zlib.crc32(area.encode()), int(room_index)])


def parse_size(text: str) -> tuple[int, int]:
    """``"HEIGHTxWIDTH"`` (e.g. ``"1024x2048"``) -> (1024, 2048); width must be twice the height."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if m is None:
        raise ValueError(f"size must be HEIGHTxWIDTH such as 1024x2048, got {text!r}")
    return check_size((int(m.group(1)), int(m.group(2))))


# --------------------------------------------------------------------------------------------------
# Pinhole photos of the same rooms
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedView:
    """One pinhole photo of a room (conventions of :mod:`panosamic.geometry`: image x right, y down; yaw 0
    looks at the panorama's centre column, i.e. north; positive pitch up, positive roll clockwise).

    ``instance_index`` is room-local as in :class:`RenderedRoom` (no missing pixels: photos have no caps);
    ``intrinsics`` is K in pixels with pixel centres at ``i + 0.5``.
    """

    rgb: np.ndarray  # uint8 h x w x 3
    depth_m: np.ndarray  # float32 h x w, Euclidean distance from the camera centre
    instance_index: np.ndarray  # int32 h x w
    class_map: np.ndarray  # int64 h x w
    intrinsics: tuple[tuple[float, float, float], ...]
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    room_name: str
    camera_id: str
    instance_classes: tuple[str, ...]


def pinhole_rays_room(size: Sequence[int], fov_deg: float, yaw_deg: float, pitch_deg: float,
                      roll_deg: float = 0.0) -> np.ndarray:
    """float32 unit rays (h, w, 3) of a pinhole view in the room frame (x east, y north, z up)."""
    from panosamic.geometry import PinholeCamera  # torch, only for photos: panoramas stay numpy-only

    h, w = (int(v) for v in size)
    camera = PinholeCamera(fov_deg=fov_deg, yaw_deg=yaw_deg, pitch_deg=pitch_deg, roll_deg=roll_deg)
    g = camera.rays(w, h).double().numpy()
    # geometry frame (x right/east, y down, z forward/north) -> room frame (x east, y north, z up)
    return np.stack([g[..., 0], g[..., 2], -g[..., 1]], -1).astype(np.float32)


def render_views(
    rng_or_seed: np.random.Generator | np.random.SeedSequence | int,
    views: Sequence[tuple[float, float, float]],
    size: Sequence[int] = (64, 64),
    *,
    fov_deg: float = 60.0,
    room_number: int = 1,
    domain: str | SyntheticDomain | None = None,
) -> list[RenderedView]:
    """Pinhole photos ``(height, width) = size`` at ``views`` = [(yaw, pitch, roll) degrees] from the camera
    position of the room :func:`render_room` draws from the same seed (same layout, camera and instances:
    a room's panorama and its photos share their instance labels). Pixel noise is drawn view after view."""
    rng = _generator(rng_or_seed)
    h, w = (int(v) for v in size)
    if h < 1 or w < 1 or not 0 < fov_deg < 180:
        raise ValueError(f"need a positive size and fov_deg in (0, 180), got {(h, w)} and {fov_deg}")
    camera_id = "".join(f"{int(b):02x}" for b in rng.integers(0, 256, 16))
    layout = _Layout(rng, get_domain(domain))
    salt0 = int(rng.integers(0, 1 << 30))
    local_of_obj, classes, class_of_local = _instance_tables(layout)
    f = (w / 2) / np.tan(np.radians(fov_deg) / 2)
    k = ((float(f), 0.0, w / 2), (0.0, float(f), h / 2), (0.0, 0.0, 1.0))
    out = []
    for yaw, pitch, roll in views:
        d = pinhole_rays_room((h, w), fov_deg, yaw, pitch, roll)
        dist, obj, axis = _cast(layout, h, w, rays=d)
        sign = -np.sign(np.take_along_axis(d, axis[..., None].astype(np.intp), -1)[..., 0])
        normals = np.zeros((h, w, 3), np.float32)
        np.put_along_axis(normals, axis[..., None].astype(np.intp), sign[..., None], -1)
        rgb = _colour(layout, rng, d, dist, obj, axis, normals, salt0, px_per_deg=float(f) * np.pi / 180)
        instance = local_of_obj[obj].astype(np.int32)
        out.append(RenderedView(
            rgb=rgb, depth_m=dist.astype(np.float32), instance_index=instance,
            class_map=class_of_local[instance].astype(np.int64), intrinsics=k, yaw_deg=float(yaw),
            pitch_deg=float(pitch), roll_deg=float(roll), room_name=f"{layout.room_type}_{int(room_number)}",
            camera_id=camera_id, instance_classes=tuple(classes),
        ))  # fmt: skip
    return out
