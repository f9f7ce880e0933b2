"""Shared test helpers: fixture paths, tiny models, the compat tables."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

# Under pytest-xdist (on by default, see pyproject.toml) every worker gets its share of the cores, and so
# do the processes it starts: oversubscribed OpenMP threads are many times slower than one thread each.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _THREADS = max(1, len(os.sched_getaffinity(0)) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_THREADS))
    os.environ.setdefault("MKL_NUM_THREADS", str(_THREADS))

import torch  # after the thread settings above

if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    torch.set_num_threads(_THREADS)

FIXTURES = Path(__file__).parent / "fixtures"
COMPAT = FIXTURES / "compat"
PARITY = FIXTURES / "parity"

# make_weights.py (deterministic test weights from a key/shape table) is test tooling, not package code.
sys.path.insert(0, str(COMPAT))

#: the fault suite's shared fixtures (cli server, tiny model folder, panoramas)
pytest_plugins = ["faults_fixtures"]

# ---------------------------------------------------------------- temporary files in memory
#: Free space (bytes) that ``/dev/shm`` must have before the tests' temporary files go there.
RAM_TMP_MIN_FREE = 8 << 30


def _ram_tmp_root() -> Path | None:
    """``/dev/shm`` where it is a writable memory file system with room to spare, else ``None``."""
    if os.environ.get("PANOSAMIC_TEST_TMP", "").lower() == "disk":
        return None
    shm = Path("/dev/shm")
    try:
        st = os.statvfs(shm)
    except OSError:
        return None
    return shm if st.f_bavail * st.f_frsize >= RAM_TMP_MIN_FREE and os.access(shm, os.W_OK) else None


#: Leftovers of runs that were killed (no clean-up ran) are removed by a later run after this long.
RAM_TMP_MAX_AGE_S = 24 * 3600


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Temporary files (``tmp_path``) in memory unless ``--basetemp`` says where.

    Every write of the library is durable (fsync of the file and its folder); on a disk the suite
    waits for them (measured on the quiet 2-core machine, the same tests: 284 s on disk, 261 s in
    memory). ``PANOSAMIC_TEST_TMP=disk`` keeps pytest's default. The folder is removed at the end
    (after the session's fixtures are torn down), and kept, its path printed, after a failing or
    interrupted run; folders of killed runs are removed by the first run a day later.
    """
    if config.option.basetemp or hasattr(config, "workerinput"):
        return  # given by the user, or a pytest-xdist worker (its folder lies in the main process's)
    root = _ram_tmp_root()
    if root is None:
        return
    now = time.time()
    for old in root.glob("panosamic-tests-*"):
        with contextlib.suppress(OSError):
            if now - old.stat().st_mtime > RAM_TMP_MAX_AGE_S:
                shutil.rmtree(old, ignore_errors=True)
    config.option.basetemp = tempfile.mkdtemp(prefix="panosamic-tests-", dir=root)
    config._panosamic_ram_tmp = config.option.basetemp


def pytest_sessionfinish(session, exitstatus):
    folder = getattr(session.config, "_panosamic_ram_tmp", None)
    if folder is not None and exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.config._panosamic_kept_tmp = folder


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    folder = getattr(config, "_panosamic_kept_tmp", None)
    if folder is not None:
        terminalreporter.write_line(f"the temporary files of this run are kept in {folder} (in memory: remove it when done)")


def pytest_unconfigure(config):
    folder = getattr(config, "_panosamic_ram_tmp", None)
    if folder is not None and getattr(config, "_panosamic_kept_tmp", None) is None:
        shutil.rmtree(folder, ignore_errors=True)  # also after --help, --markers, --collect-only


def tiny_config(**changes):
    """A reference-style config whose model runs on a 256 canvas (native input 128x256)."""
    from panosamic.config import PanoSAMicConfig

    return PanoSAMicConfig(canvas_size=256).replace(**changes)


def tiny_model_config(modalities=("image",), num_classes=13, semantic_only=True, **config_changes):
    """The ModelConfig of a tiny test architecture (vit_tiny on a 256 canvas)."""
    return tiny_config(**config_changes).model_config(vit="vit_tiny", modalities=modalities,
                                                      num_classes=num_classes).replace(semantic_only=semantic_only)


def make_tiny_model(modalities=("image",), num_classes=13, semantic_only=True, seed=0, **config_changes):
    """A tiny, randomly initialised PanoSAMic (vit_tiny encoder with random, non-zero weights)."""
    from panosamic.model import create_model

    torch.manual_seed(seed)
    model = create_model(tiny_model_config(modalities, num_classes, semantic_only, **config_changes))
    with torch.no_grad():  # SAM zero-initialises the relative position tables; make them count
        for name, p in model.image_encoder.named_parameters():
            if "rel_pos" in name or name == "pos_embed":
                p.normal_(0, 0.1)
    return model.eval()


@pytest.fixture
def tiny_model():
    return make_tiny_model()


def random_panorama(modalities=("image",), height=128, width=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randint(0, 256, (3, height, width), generator=g).float() for m in modalities}


def build_parity_case(name: str = "vit_b_rgb_dv_s1"):
    """The reference parity case: (model with make_weights loaded, input image, expected arrays)."""
    import json

    import numpy as np
    from make_weights import make_inputs, make_weights

    from panosamic.config import PanoSAMicConfig
    from panosamic.model import create_model
    from panosamic.modeling import load_state_dict_checked

    case_dir = PARITY / name
    case = json.loads((case_dir / "case.json").read_text())
    weights = make_weights(str(COMPAT / f"state_dict_{case['vit']}_rgb.tsv"), seed=case["seed"], semantic_only=True)
    model = create_model(PanoSAMicConfig.from_json(f"config/{case['config']}").model_config(
        vit=case["vit"], modalities=case["modalities"], num_classes=case["num_classes"]))
    load_state_dict_checked(model, {k: torch.from_numpy(v) for k, v in weights.items()})
    x = torch.from_numpy(make_inputs(case["modalities"], case["height"], case["width"], seed=case["seed"])["image"])
    return model.eval(), x, np.load(case_dir / "expected.npz")


@pytest.fixture(scope="session")
def parity_case():
    """The parity case built once per session (building ViT-B from make_weights costs ~15 s of CPU).

    Tests that change the model's inference options restore them (see ``parity_fast_logits``)."""
    return build_parity_case()


@pytest.fixture(scope="session")
def parity_fast_logits(parity_case):
    """The parity model's logits on the default (fast, SDPA, fp32) path, computed once per session."""
    model, x, _ = parity_case
    previous = model.inference_options
    model.set_inference_path("fast")
    try:
        with torch.no_grad():
            logits = model([{"image": x}])[0]["sem_preds"]
    finally:
        model.configure_inference(previous)
    return logits


def prepared_synthetic(root: Path, *, rooms_per_area: int, size: tuple[int, int], seed: int) -> Path:
    """A synthetic raw Stanford2D3DS dataset rendered under ``root/raw`` and prepared into ``root/processed``."""
    from panosamic.data.prepare import prepare_dataset
    from panosamic.synth import make_synthetic_stanford

    make_synthetic_stanford(root / "raw", rooms_per_area=rooms_per_area, size=size, seed=seed)
    prepare_dataset("stanford2d3ds", root / "raw", root / "processed", scale=1.0, progress=False)
    return root / "processed"


def build_model(config, *, vit_model, modalities, num_classes, semantic_only=True, **use):
    """A PanoSAMic from a reference config (path, dict or object) plus ViT, modalities and classes."""
    from panosamic.config import PanoSAMicConfig
    from panosamic.model import create_model

    cfg = PanoSAMicConfig.coerce(config).model_config(vit=vit_model, modalities=modalities, num_classes=num_classes,
                                                     **use)
    return create_model(cfg.replace(semantic_only=semantic_only))


# ---------------------------------------------------------------- workers (pytest-xdist)
#: Files run by one worker, in one unit, because they share an expensive session fixture.
SHARED_WORKER = {"test_parity.py": "parity", "test_speed_paths.py": "parity", "test_cuda.py": "parity"}
#: The longest files (CPU seconds measured on the 2-core machine, longest first) start first: a worker
#: takes the next file when it is free, in collection order, so the short ones fill the end.
LONGEST_FIRST = ("test_train.py", "test_parity.py", "test_speed_paths.py", "test_faults.py",
                 "test_reference_paths.py", "test_folder_dataset.py", "test_gpu_suite.py", "test_tutorial.py",
                 "test_hub.py", "test_faults_predict.py", "test_faults_jobs.py", "test_predict_scale.py",
                 "test_faults_loading.py", "test_data_prepare.py", "test_adapt.py", "test_faults_misc.py",
                 "test_demo_browser.py", "test_sphere.py", "test_model_state_dict.py", "test_data_empty_areas.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per core, at most four (``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return max(1, min(4, len(os.sched_getaffinity(0))))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile``, with the files of :data:`SHARED_WORKER` kept on one worker."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedFileScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return SHARED_WORKER.get(file.rsplit("/", 1)[-1], file)

    return SharedFileScheduling(config, log)
