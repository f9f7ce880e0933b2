"""Seeing the sphere through perspective views: the view sets, ERP -> views, views -> ERP.

``cube``: the six cube faces at ``fov_deg`` (>= 90°; above 90° neighbours overlap); ``tangent``:
square views in latitude rings with a view at each pole (:func:`panosamic.geometry.tangent_views`).
Back-projection samples each view's class scores at every panorama pixel's direction and blends
the views with weights that fall to (nearly) zero at each view's border, so overlaps and the ±180°
seam blend without a step; the poles are covered by the views looking at them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from panosamic.geometry import (
    PinholeCamera,
    ViewOrientation,
    cube_views,
    erp_directions,
    erp_to_pinhole,
    sample,
    tangent_views,
)

__all__ = ["DEFAULT_FOV", "VIEW_MODES", "ViewLayout"]

#: How the panorama is seen: whole (``erp``) or through perspective views.
VIEW_MODES: tuple[str, ...] = ("erp", "cube", "tangent")
#: Default field of view (degrees) of each view mode.
DEFAULT_FOV: dict[str, float] = {"cube": 100.0, "tangent": 75.0}
#: Weight of a view at its very border (never zero, so a pixel seen only at borders is still covered).
_EDGE_WEIGHT = 1e-3


@dataclass(frozen=True)
class ViewLayout:
    """The perspective views of a panorama: orientations, a common square size and field of view."""

    mode: str
    fov_deg: float
    size: int
    orientations: tuple[ViewOrientation, ...]
    _geometry: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def create(cls, mode: str, size: int, fov_deg: float | None = None) -> ViewLayout:
        """``mode`` "cube" or "tangent"; ``fov_deg`` None: :data:`DEFAULT_FOV`."""
        check_views(mode, fov_deg)
        if mode == "erp":
            raise ValueError("the 'erp' mode has no perspective views")
        fov = float(fov_deg if fov_deg is not None else DEFAULT_FOV[mode])
        views = cube_views() if mode == "cube" else tangent_views(fov, overlap_deg=fov / 4)
        return cls(mode, fov, int(size), tuple(views))

    @property
    def num_views(self) -> int:
        return len(self.orientations)

    def _camera(self, device: torch.device) -> PinholeCamera:
        """The views as one camera, its orientation given per view."""
        o = self.orientations
        angles = {k: torch.tensor([getattr(v, k) for v in o], dtype=torch.float64, device=device)
                  for k in ("yaw_deg", "pitch_deg", "roll_deg")}
        return PinholeCamera(fov_deg=self.fov_deg, **angles)

    def render(self, image: torch.Tensor) -> torch.Tensor:
        """(C, H, 2H) panorama -> (V, C, size, size) views (bilinear, wrapping at the seam)."""
        return erp_to_pinhole(image[None], self._camera(image.device), width=self.size, height=self.size)

    def footprints(self, erp_height: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, ...]:
        """Each view's pixel coordinates ``x, y`` (V, H, 2H) of every panorama pixel and its blend
        weight there (0 outside the view), cached per panorama height and device."""
        key = (int(erp_height), str(device))
        if key not in self._geometry:
            dirs = erp_directions(int(erp_height), device=device, dtype=torch.float64)
            camera = self._camera(torch.device(device))
            x, y, inside = camera.project(dirs, self.size, self.size)
            half = self.size / 2
            fx = (1 - ((x + 0.5 - half) / half).abs()).clamp(0, 1)
            fy = (1 - ((y + 0.5 - half) / half).abs()).clamp(0, 1)
            weight = torch.where(inside, _EDGE_WEIGHT + fx * fy, torch.zeros_like(fx))
            self._geometry.clear()  # one panorama size at a time
            self._geometry[key] = (x.float(), y.float(), weight.float())
        return self._geometry[key]

    def blend(self, views: torch.Tensor | Callable[[int], torch.Tensor], erp_height: int) -> torch.Tensor:
        """(V, K, size, size) per-view maps (or a function of the view index giving (K, size, size))
        -> (K, H, 2H): the weighted mean of the views seeing each panorama pixel."""
        get = views if callable(views) else (lambda i: views[i])
        first = get(0)
        device = first.device
        x, y, weight = self.footprints(erp_height, device)
        total = torch.zeros(first.shape[0], erp_height, 2 * erp_height, dtype=torch.float32, device=device)
        for i in range(self.num_views):
            v = first if i == 0 else get(i)
            seen = sample(v[None].float(), x[i : i + 1], y[i : i + 1], nearest=False)[0]
            total.addcmul_(seen, weight[i][None])
        return total / weight.sum(0).clamp(min=1e-12)[None]

    def coverage(self, erp_height: int) -> torch.Tensor:
        """(H, 2H) number of views whose image holds each panorama pixel."""
        return (self.footprints(erp_height)[2] > 0).sum(0)


def check_views(mode: str, fov_deg: float | None) -> None:
    """Refuse an unknown view mode or a field of view that leaves gaps (cube < 90°) or is not in (0, 180)."""
    if mode not in VIEW_MODES:
        raise ValueError(f"views must be one of {', '.join(VIEW_MODES)}, got {mode!r}")
    if fov_deg is None:
        return
    if mode == "erp":
        raise ValueError("a field of view applies to the 'cube' and 'tangent' views, not to 'erp'")
    if not 0 < float(fov_deg) < 180:
        raise ValueError(f"the field of view must be in (0, 180) degrees, got {fov_deg}")
    if mode == "cube" and float(fov_deg) < 90:
        raise ValueError(f"cube views need a field of view of at least 90 degrees (else gaps), got {fov_deg}")
