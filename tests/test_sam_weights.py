"""SAM checkpoint registry: lookup, verified download, safe loading, ViT size detection."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from conftest import build_model

from panosamic.modeling import infer_vit_size
from panosamic.weights import sam as sam_mod
from panosamic.weights.sam import (
    SAM_CHECKPOINTS,
    SamCheckpoint,
    SamWeightsUnavailableError,
    download_sam_checkpoint,
    load_sam_state_dict,
    resolve_sam_weights,
    sam_cache_dir,
)


class _Evil:
    """Pickling this needs code: weights_only=True must refuse it."""

    def __reduce__(self):
        return (print, ("pickled code ran",))


def _fake_encoder(embed_dim: int, depth: int, prefix: str = "image_encoder.") -> dict[str, torch.Tensor]:
    sd = {f"{prefix}patch_embed.proj.weight": torch.zeros(embed_dim, 3, 1, 1)}
    for i in range(depth):
        sd[f"{prefix}blocks.{i}.norm1.weight"] = torch.zeros(1)
    return sd


# ---------------------------------------------------------------------------- registry
def test_registry_names_urls_and_checksums():
    assert sorted(SAM_CHECKPOINTS) == ["vit_b", "vit_h", "vit_l"]
    for vit, entry in SAM_CHECKPOINTS.items():
        assert entry.vit_model == vit
        assert entry.filename == f"sam_{vit}_{entry.md5[:6]}.pth"  # Meta's names carry the MD5 prefix
        assert entry.url == f"https://dl.fbaipublicfiles.com/segment_anything/{entry.filename}"
    assert SAM_CHECKPOINTS["vit_h"].md5 == "4b8939a88964f0f4ff5f5b2642c598a6"
    assert SAM_CHECKPOINTS["vit_l"].md5 == "0b3195507c641ddb6910d2bb5adee89c"
    assert SAM_CHECKPOINTS["vit_b"].md5 == "01ec64d29a2fca3f0661936605ae66f8"


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PANOSAMIC_CACHE", str(tmp_path / "c"))
    assert sam_cache_dir() == tmp_path / "c" / "sam"
    monkeypatch.delenv("PANOSAMIC_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert sam_cache_dir() == tmp_path / "x" / "panosamic" / "sam"


@pytest.mark.parametrize(("vit", "dim", "depth"), [("vit_b", 768, 12), ("vit_l", 1024, 24), ("vit_h", 1280, 32), ("vit_tiny", 32, 5)])
def test_infer_vit_size(vit, dim, depth):
    assert infer_vit_size(_fake_encoder(dim, depth)) == vit
    assert infer_vit_size(_fake_encoder(dim, depth, prefix="")) == vit


def test_infer_vit_size_unknown():
    with pytest.raises(ValueError, match="embed dim 768, 7 blocks"):
        infer_vit_size(_fake_encoder(768, 7))
    with pytest.raises(ValueError, match="not a SAM encoder"):
        infer_vit_size({"feature_fuser.x": torch.zeros(1)})


# ---------------------------------------------------------------------------- loading
def test_load_plain_state_dict(tmp_path):
    sd = _fake_encoder(32, 5)
    torch.save(sd, tmp_path / "sam.pth")
    loaded = load_sam_state_dict(tmp_path / "sam.pth")
    assert sorted(loaded) == sorted(sd)


def test_pickled_code_refused(tmp_path, capsys):
    torch.save({"image_encoder.x": torch.zeros(1), "evil": _Evil()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="pickled code"):
        load_sam_state_dict(tmp_path / "evil.pth")
    assert "pickled code ran" not in capsys.readouterr().out


def test_truncated_and_missing_files(tmp_path):
    torch.save(_fake_encoder(32, 5), tmp_path / "sam.pth")
    data = (tmp_path / "sam.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_sam_state_dict(tmp_path / "cut.pth")
    with pytest.raises(FileNotFoundError):
        load_sam_state_dict(tmp_path / "nope.pth")


def test_checkpoint_for_another_vit_size_is_refused():
    from panosamic.config import PanoSAMicConfig

    model = build_model(PanoSAMicConfig(canvas_size=256), vit_model="vit_tiny", modalities=("image",), num_classes=13)
    with pytest.raises(ValueError, match=r"for vit_b.*built for vit_tiny"):
        model.load_sam_weights(_fake_encoder(768, 12))


# ---------------------------------------------------------------------------- resolving
def test_resolve_file_and_folder(tmp_path):
    f = tmp_path / "mine.pth"
    f.write_bytes(b"x")
    assert resolve_sam_weights(f, "vit_b") == f
    folder = tmp_path / "sam_weights"
    folder.mkdir()
    (folder / "aaa_vit_b_other.pth").write_bytes(b"x")
    assert resolve_sam_weights(folder, "vit_b") == folder / "aaa_vit_b_other.pth"
    (folder / "sam_vit_b_01ec64.pth").write_bytes(b"x")
    assert resolve_sam_weights(folder, "vit_b") == folder / "sam_vit_b_01ec64.pth"  # registry name preferred
    with pytest.raises(FileNotFoundError, match="vit_tiny"):
        resolve_sam_weights(folder, "vit_tiny")
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_sam_weights(tmp_path / "missing.pth", "vit_b")


def test_resolve_reuses_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("PANOSAMIC_CACHE", str(tmp_path))
    (tmp_path / "sam").mkdir()
    cached = tmp_path / "sam" / "sam_vit_l_0b3195.pth"
    cached.write_bytes(b"x")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no download may be attempted
    assert resolve_sam_weights(None, "vit_l") == cached


# ---------------------------------------------------------------------------- download
class _FileServer:
    """Serves one payload; ``cut`` > 0 announces the full length but sends only ``cut`` bytes."""

    def __init__(self, payload: bytes, cut: int = 0):
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.hits += 1  # on arrival: counted after the reply, the client could check first
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload[:cut] if cut else payload)

        self.hits = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/sam_vit_b_01ec64.pth"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


def _patch_registry(monkeypatch, url: str, md5: str) -> None:
    monkeypatch.setitem(SAM_CHECKPOINTS, "vit_b", SamCheckpoint("vit_b", "sam_vit_b_01ec64.pth", md5, url=url))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def test_download_verifies_and_renames(monkeypatch, tmp_path):
    with _FileServer(PAYLOAD) as srv:
        _patch_registry(monkeypatch, srv.url, hashlib.md5(PAYLOAD).hexdigest())
        path = download_sam_checkpoint("vit_b", tmp_path, progress=False)
        assert path == tmp_path / "sam_vit_b_01ec64.pth"
        assert path.read_bytes() == PAYLOAD
        assert not list(tmp_path.glob("*.part"))
        download_sam_checkpoint("vit_b", tmp_path, progress=False)  # reused, not fetched again
        assert srv.hits == 1


def test_checksum_mismatch_refused(monkeypatch, tmp_path):
    with _FileServer(PAYLOAD) as srv:
        _patch_registry(monkeypatch, srv.url, "0" * 32)
        with pytest.raises(ValueError, match="checksum mismatch"):
            download_sam_checkpoint("vit_b", tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its .part


def test_partial_download_never_left_as_the_real_file(monkeypatch, tmp_path):
    with _FileServer(PAYLOAD, cut=100_000) as srv:
        _patch_registry(monkeypatch, srv.url, hashlib.md5(PAYLOAD).hexdigest())
        with pytest.raises(SamWeightsUnavailableError, match=r"interrupted|stopped after"):
            download_sam_checkpoint("vit_b", tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_offline_says_which_file_to_place_where(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SamWeightsUnavailableError) as e:
        resolve_sam_weights(tmp_path / "sam_weights", "vit_h")
    msg = str(e.value)
    assert "sam_vit_h_4b8939.pth" in msg and str(tmp_path / "sam_weights") in msg and "4b8939a8" in msg


def test_no_network_is_a_clear_error(monkeypatch, tmp_path):
    _patch_registry(monkeypatch, "http://127.0.0.1:9/sam_vit_b_01ec64.pth", "0" * 32)  # discard port: refused
    with pytest.raises(SamWeightsUnavailableError, match=r"could not download.*place it at"):
        download_sam_checkpoint("vit_b", tmp_path, progress=False)
    assert not list(tmp_path.glob("*"))


def test_cli_download_sam(monkeypatch, tmp_path, capsys):
    from panosamic.cli import main

    with _FileServer(PAYLOAD) as srv:
        _patch_registry(monkeypatch, srv.url, hashlib.md5(PAYLOAD).hexdigest())
        assert main(["download-sam", "vit_b", "--dir", str(tmp_path), "--no-progress", "--verify"]) == 0
    assert Path(capsys.readouterr().out.strip()) == tmp_path / "sam_vit_b_01ec64.pth"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["download-sam", "vit_l", "--dir", str(tmp_path), "--no-progress"]) == 1
    assert "sam_vit_l_0b3195.pth" in capsys.readouterr().err


def test_verify_detects_a_changed_file(tmp_path):
    f = tmp_path / "sam_vit_b_01ec64.pth"
    f.write_bytes(b"not the real file")
    with pytest.raises(ValueError, match="checksum mismatch"):
        sam_mod.verify_sam_checkpoint(f, "vit_b")
