"""``panosamic synth`` flags: render a synthetic dataset in the raw Stanford2D3DS (or ToF-360) layout."""

from __future__ import annotations

import argparse

from panosamic import flags
from panosamic.cli.checks import check_at_least


def _size(text: str) -> tuple[int, int]:
    from panosamic.synth import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _photo_size(text: str) -> tuple[int, int]:
    parts = str(text).lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"--pinhole-size {text!r}: expected HEIGHTxWIDTH such as 64x64")
    return int(parts[0]), int(parts[1])


#: Raw layouts ``synth`` writes (the first is the default).
LAYOUTS: tuple[str, ...] = ("stanford2d3ds", "tof360")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from panosamic.synth import DEFAULT_AREAS, DEFAULT_SIZE
    from panosamic.synth.domains import DEFAULT_DOMAIN, DOMAINS

    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (raw Stanford2D3DS layout)"
    )
    parser.add_argument(
        "--layout", choices=LAYOUTS, default=LAYOUTS[0],
        help="raw layout to write: Stanford2D3DS's, or ToF-360's (its four scenes, ids of its label table)",
    )  # fmt: skip
    parser.add_argument(
        "--areas", nargs="+", default=None, metavar="AREA",
        help=f"areas (ToF-360: scenes) to write (default: all of the layout's; {' '.join(DEFAULT_AREAS)})",
    )  # fmt: skip
    parser.add_argument("--rooms-per-area", type=int, default=2, metavar="N", help="panoramas per area")
    parser.add_argument("--size", type=_size, default=DEFAULT_SIZE, metavar="HxW",
                        help=f"panorama HEIGHTxWIDTH, width = 2 x height (default: {'x'.join(map(str, DEFAULT_SIZE))}, "
                        "like the real data)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same files")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty folder, replacing an earlier synthetic dataset there",
    )
    parser.add_argument(
        "--domain",
        choices=sorted(DOMAINS),
        default=DEFAULT_DOMAIN.name,
        help="look of the building and camera: materials, lighting, sensor, tripod height, caps",
    )
    g = parser.add_argument_group("perspective photos of the same rooms (`prepare stanford2d3ds-pinhole` reads them)")
    g.add_argument("--pinhole-views", type=int, default=0, metavar="N", help="photos per room, yaws 360/N apart")
    g.add_argument("--pinhole-size", default="64x64", metavar="HxW", help="photo HEIGHTxWIDTH")
    g.add_argument("--pinhole-fov", type=float, default=60.0, metavar="DEG", help="horizontal field of view")
    flags.add_progress(parser, "--quiet")
    flags.add_debug(parser)


def check(args: argparse.Namespace) -> None:
    from panosamic.preflight import check_output_dir

    check_at_least(("--rooms-per-area", args.rooms_per_area, 1), ("--pinhole-views", args.pinhole_views, 0))
    if not 0 < args.pinhole_fov < 180:
        raise ValueError(f"--pinhole-fov must be in (0, 180) degrees, got {args.pinhole_fov:g}")
    _photo_size(args.pinhole_size)
    if args.layout == "tof360":
        from panosamic.data.tof360_codec import SCENES

        if args.pinhole_views:
            raise ValueError("--pinhole-views: only with --layout stanford2d3ds (ToF-360 has no perspective photos)")
        bad = [a for a in args.areas or () if a not in SCENES]
        if bad:
            raise ValueError(f"--areas {' '.join(bad)}: ToF-360's scenes are {', '.join(SCENES)}")
    check_output_dir(args.out, what="--out", create=False)


def run(args: argparse.Namespace) -> int:
    import time

    from panosamic.synth import DEFAULT_AREAS, make_synthetic_stanford

    start = time.perf_counter()
    if args.layout == "tof360":
        from panosamic.data.tof360_codec import SCENES
        from panosamic.synth.tof360 import make_synthetic_tof360

        samples = make_synthetic_tof360(args.out, scenes=args.areas or SCENES, rooms_per_scene=args.rooms_per_area,
                                        size=args.size, seed=args.seed, overwrite=args.overwrite, domain=args.domain)
        print(f"wrote {len(samples)} panoramas ({args.size[0]}x{args.size[1]}) in the ToF-360 layout "
              f"({len({s.scene for s in samples})} scenes) to {args.out} in {time.perf_counter() - start:.1f} s")
        return 0
    manifest = make_synthetic_stanford(
        args.out, areas=args.areas or DEFAULT_AREAS, rooms_per_area=args.rooms_per_area, size=args.size, seed=args.seed,
        overwrite=args.overwrite, progress=args.progress, domain=args.domain, pinhole_views=args.pinhole_views,
        pinhole_size=_photo_size(args.pinhole_size), pinhole_fov_deg=args.pinhole_fov,
    )  # fmt: skip
    h, w = manifest.size
    n, a = len(manifest.samples), len(manifest.areas)
    print(
        f"wrote {n} panorama{'s' * (n != 1)} ({h}x{w}) in {a} area{'s' * (a != 1)}, "
        f"{len(manifest.semantic_labels) - 1} instances, domain {manifest.domain}, to {manifest.out_dir} "
        f"in {time.perf_counter() - start:.1f} s"
        + (f"; {manifest.num_photos} photos in area_*/data/" if manifest.num_photos else "")
    )
    return 0
