"""A picture of the view layouts: each perspective view's footprint on the equirectangular grid."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from panosamic.io import atomic_path
from panosamic.openvocab.views import ViewLayout

__all__ = ["view_layout_figure"]


def view_layout_figure(path: str | os.PathLike, *, erp_height: int = 256, modes: tuple[str, ...] = ("cube", "tangent"),
                       fovs: dict[str, float] | None = None) -> Path:
    """One panel per view mode: how many views see each panorama pixel (shade), each view's border
    (outline) and centre (dot). Written atomically; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(modes), 1, figsize=(8, 4.4 * len(modes)), squeeze=False)
    h, w = erp_height, 2 * erp_height
    extent = (-180, 180, -90, 90)
    for ax, mode in zip(axes[:, 0], modes):
        layout = ViewLayout.create(mode, 64, (fovs or {}).get(mode))
        weight = layout.footprints(h)[2].numpy()
        count = (weight > 0).sum(0)
        im = ax.imshow(count, extent=extent, cmap="Blues", vmin=0, vmax=max(4, int(count.max())), aspect="equal")
        colours = plt.get_cmap("tab20")(np.arange(layout.num_views) % 20)
        for i, o in enumerate(layout.orientations):
            ax.contour(np.linspace(-180, 180, w), np.linspace(90, -90, h), (weight[i] > 0).astype(float), levels=[0.5],
                       colors=[colours[i]], linewidths=1.0)
            ax.plot(o.yaw_deg, o.pitch_deg, "o", color=colours[i], markersize=4)
        ax.set_title(f"{mode}: {layout.num_views} views of {layout.fov_deg:g}° "
                     f"(each pixel seen by {int(count.min())}–{int(count.max())})")
        ax.set_xlabel("longitude (°)")
        ax.set_ylabel("latitude (°)")
        ax.set_xticks(range(-180, 181, 60))
        ax.set_yticks(range(-90, 91, 45))
        fig.colorbar(im, ax=ax, fraction=0.025, label="views")
    fig.tight_layout()
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100, facecolor="white")
    plt.close(fig)
    return out
