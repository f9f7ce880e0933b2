"""The sphere once for the whole library: equirectangular panorama <-> unit sphere <-> pinhole camera.

Conventions: an ``H x 2H`` panorama's column ``u`` has longitude ``(u + 0.5) / 2H * 360° - 180°`` and
row ``v`` latitude ``90° - (v + 0.5) / H * 180°``. A camera with yaw, pitch and roll 0 looks at the
panorama's centre (longitude 0, latitude 0); positive yaw turns towards increasing longitude, positive
pitch upwards, positive roll clockwise as seen by the camera. A pinhole image has x right, y down, its
principal point at its centre and a horizontal field of view (or an intrinsic matrix): a
:class:`PinholeCamera`, which gives its pixels' rays and projects directions onto its image. Details in
:mod:`.sphere` and :mod:`.camera`; torch and numpy only.
"""

from .camera import (
    AngleLike,
    PinholeCamera,
    fov_from_intrinsics,
    intrinsics_from_fov,
    rotation_matrix,
    solid_angle_of_fov,
)
from .projection import erp_to_pinhole, pinhole_to_erp
from .sampling import sample
from .sphere import (
    directions_to_erp,
    directions_to_lonlat,
    erp_directions,
    erp_lonlat,
    erp_pixel_solid_angles,
    lonlat_to_directions,
)
from .views import ViewOrientation, cube_views, tangent_views

__all__ = [
    "AngleLike",
    "PinholeCamera",
    "ViewOrientation",
    "cube_views",
    "directions_to_erp",
    "directions_to_lonlat",
    "erp_directions",
    "erp_lonlat",
    "erp_pixel_solid_angles",
    "erp_to_pinhole",
    "fov_from_intrinsics",
    "intrinsics_from_fov",
    "lonlat_to_directions",
    "pinhole_to_erp",
    "rotation_matrix",
    "sample",
    "solid_angle_of_fov",
    "tangent_views",
]
