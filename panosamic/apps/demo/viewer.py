"""The demo's 360° view: a static page (``static/viewer.html`` with vendored Pannellum) shown in an
iframe, fed with the panorama and overlay images written to a result folder Gradio serves."""

from __future__ import annotations

import html
import shutil
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from panosamic.io import atomic_path

#: Files served to the browser: the viewer page and the vendored Pannellum build.
STATIC_DIR = Path(__file__).parent / "static"
VIEWER_PAGE = STATIC_DIR / "viewer.html"
PANNELLUM_VERSION = (STATIC_DIR / "pannellum" / "VERSION").read_text().strip()
#: Gradio's route for files it is allowed to serve.
FILE_ROUTE = "gradio_api/file="
#: JPEG quality of the images the viewer shows (the page's exact overlay is a PNG elsewhere).
VIEWER_JPEG_QUALITY = 90
#: Result folders kept on disk; older ones are deleted.
KEEP_RESULTS = 64


@dataclass(frozen=True)
class ViewerFiles:
    """The images of one result, as the viewer loads them."""

    panorama: Path
    overlay: Path | None


def file_url(path: Path) -> str:
    """The page-relative URL under which Gradio serves ``path`` (an allowed / static path)."""
    return FILE_ROUTE + urllib.parse.quote(str(Path(path).resolve()))


class ResultStore:
    """A folder of per-result subfolders holding the viewer's images; keeps the newest ``keep``."""

    def __init__(self, root: str | Path, keep: int = KEEP_RESULTS) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.keep = int(keep)

    def new_folder(self) -> Path:
        folder = self.root / uuid.uuid4().hex
        folder.mkdir()
        self._prune()
        return folder

    def _prune(self) -> None:
        folders = sorted((p for p in self.root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        for old in folders[: max(len(folders) - self.keep, 0)]:
            shutil.rmtree(old, ignore_errors=True)


def save_jpeg(image: Image.Image, path: Path) -> Path:
    """Write ``image`` atomically as an RGB JPEG."""
    with atomic_path(path) as tmp:
        image.convert("RGB").save(tmp, format="JPEG", quality=VIEWER_JPEG_QUALITY)
    return path


def write_viewer_images(folder: Path, panorama: Image.Image, overlay: Image.Image | None) -> ViewerFiles:
    """The panorama (and overlay) as JPEGs in ``folder``; the overlay gets a fresh name each time
    so that the browser never shows a cached older one."""
    pano_path = folder / "panorama.jpg"
    if not pano_path.exists():
        save_jpeg(panorama, pano_path)
    over_path = None
    if overlay is not None:
        over_path = save_jpeg(overlay, folder / f"overlay_{uuid.uuid4().hex[:8]}.jpg")
    return ViewerFiles(pano_path, over_path)


def viewer_html(files: ViewerFiles | None, height: int = 420) -> str:
    """The iframe showing ``files`` in the 360° viewer (an empty-state page when None)."""
    query = {}
    if files is not None:
        query["pano"] = str(files.panorama.resolve())
        if files.overlay is not None:
            query["overlay"] = str(files.overlay.resolve())
    src = file_url(VIEWER_PAGE) + ("?" + urllib.parse.urlencode(query) if query else "")
    return (
        f'<iframe id="panosamic-viewer" title="360° view" src="{html.escape(src)}" '
        f'style="width:100%;height:{int(height)}px;border:0;border-radius:8px" allowfullscreen></iframe>'
    )
