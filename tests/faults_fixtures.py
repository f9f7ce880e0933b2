"""Fixtures shared by the fault-suite files (``tests/test_faults*.py``), loaded as a pytest plugin.

A module that needs something else (another panorama set, another model) defines its own fixture
of the same name, which takes precedence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_model
from faults_helpers import CliServer
from PIL import Image

#: Size (height, width) of the fault suite's panoramas.
FAULT_PANO_SIZE = (64, 128)
#: Canvas of the fault suite's tiny models: their native input is the panoramas' 64x128 (a 256 canvas
#: costs four times the CPU in every forward and checks nothing more).
FAULT_CANVAS = 128


@pytest.fixture(scope="session")
def cli(tmp_path_factory):
    """A fork server that runs each case as a fresh ``panosamic`` command-line process (one per test
    worker: its warm-up imports everything once, and nothing it runs changes it)."""
    server = CliServer(tmp_path_factory.mktemp("cli"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """The tiny test model saved as a Hub-layout folder."""
    d = tmp_path_factory.mktemp("model") / "tiny"
    make_tiny_model(canvas_size=FAULT_CANVAS).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def panos(tmp_path_factory) -> Path:
    """Two good 64x128 panoramas, a.png and b.png."""
    d = tmp_path_factory.mktemp("panos")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (*FAULT_PANO_SIZE, 3), dtype=np.uint8)).save(d / f"{name}.png")
    return d
