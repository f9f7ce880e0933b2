"""ONNX export of a :class:`PanoStudent` and an onnxruntime wrapper with the same predict interface.

The exported graph takes ``pixels`` (B, 3M, H, W) float32 on the 0-255 scale (modalities stacked
as channels in canonical order; normalisation is inside) and returns ``logits`` (B, K, H, W). The
batch is always dynamic; H and W are fixed to the config's native size or dynamic (multiples of
32, W = 2H). The student's config travels in the file's ``metadata_props`` as JSON, so an
``.onnx`` is self-describing: ``OnnxStudent("student.onnx")`` needs nothing else.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from panosamic.constants import NEAREST_MODALITIES
from panosamic.student import numpy_resize
from panosamic.student.config import StudentConfig, StudentFacts

if TYPE_CHECKING:

    from panosamic.student.model import PanoStudent

__all__ = ["CONFIG_KEY", "OnnxStudent", "export_onnx", "read_onnx_config"]

CONFIG_KEY = "panosamic_student_config"
DYNAMIC_KEY = "panosamic_dynamic_size"
INPUT_NAME, OUTPUT_NAME = "pixels", "logits"


def export_onnx(model: PanoStudent, path: str | os.PathLike, *, dynamic_size: bool = False,
                opset: int = 17) -> Path:
    """Write ``model`` as ONNX to ``path`` (atomically), checked with ``onnx.checker``; returns the path."""
    import onnx
    import torch

    from panosamic.io import atomic_write_bytes
    from panosamic.student.model import PanoStudent, StudentTensorPath

    if not isinstance(model, PanoStudent):
        raise TypeError(f"export_onnx exports a PanoStudent, got {type(model).__name__}")
    h, w = model.native_size
    dummy = torch.zeros(1, model.config.in_channels, h, w, device=model.device)
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_size else {0: "batch"}
    buffer = io.BytesIO()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # circular padding slices with negative steps, which the exporter cannot pre-compute: harmless
            warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
            # the torch.export-based exporter needs onnxscript (not a dependency): the TorchScript one
            warnings.filterwarnings("ignore", message="You are using the legacy TorchScript", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message="The feature will be removed", category=DeprecationWarning)
            torch.onnx.export(StudentTensorPath(model), (dummy,), buffer, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], opset_version=opset, dynamo=False,
                              dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes}, do_constant_folding=True)
    finally:
        model.train(was_training)
    proto = onnx.load_from_string(buffer.getvalue())
    meta = {CONFIG_KEY: json.dumps(model.config.to_dict()), DYNAMIC_KEY: json.dumps(bool(dynamic_size))}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f"panosamic student {model.config.variant_name}: pixels (B, 3M, H, W) 0-255 -> logits"
    onnx.checker.check_model(proto)
    return atomic_write_bytes(path, proto.SerializeToString())


def read_onnx_config(path: str | os.PathLike) -> tuple[StudentConfig, bool]:
    """(config, dynamic_size) from an exported student's metadata (ValueError if it has none)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {path}")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends
        raise ValueError(f"{path} is not a readable ONNX file: {e}") from e
    meta = {p.key: p.value for p in proto.metadata_props}
    if CONFIG_KEY not in meta:
        raise ValueError(f"{path} carries no {CONFIG_KEY!r} metadata: not exported by panosamic.student.export_onnx")
    return StudentConfig.from_dict(json.loads(meta[CONFIG_KEY]), where=f"{path} metadata"), json.loads(
        meta.get(DYNAMIC_KEY, "false"))


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


class _CPU:
    """``torch.device("cpu")`` where torch is loaded; a stand-in with ``type`` ``"cpu"`` otherwise."""

    type = "cpu"
    index = None

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        import sys

        torch = sys.modules.get("torch")
        return torch.device("cpu") if torch is not None else self

    def __str__(self) -> str:
        return "cpu"


class OnnxStudent(StudentFacts):
    """An exported student run by onnxruntime, with :class:`PanoStudent`'s ``forward`` / predict interface.

    Duck-types what :func:`panosamic.inference.predict` uses of a torch model (``eval``, ``train``,
    ``parameters`` on the CPU, ``inference_options_applied``); runs on the CPU provider unless
    ``providers`` says otherwise. Torch tensors in give torch tensors out; NumPy arrays in
    (``accepts_numpy``) give NumPy arrays out, and then nothing imports torch.
    """

    semantic_only = True
    training = False
    #: The prediction core may hand this model NumPy (3, H, W) float32 arrays (no torch needed).
    accepts_numpy = True
    device = _CPU()

    def __init__(self, path: str | os.PathLike, *, providers: Sequence[str] | None = None,
                 threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.config, self.dynamic_size = read_onnx_config(self.path)
        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(str(self.path), sess_options=opts,
                                            providers=list(providers or ["CPUExecutionProvider"]))

    def _run(self, arr: np.ndarray) -> np.ndarray:
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        c = self.config.in_channels
        if arr.ndim != 4 or arr.shape[1] != c:
            raise ValueError(f"expected pixels of shape (B, {c}, H, W), got {arr.shape}")
        h, w = arr.shape[2:]
        if not self.dynamic_size and (h, w) != self.native_size:
            raise ValueError(f"{self.path.name} was exported for {self.native_size} (HxW), got {(h, w)}")
        if h % 32 or w != 2 * h:
            raise ValueError(f"pixels must be H x 2H with H a multiple of 32, got {h}x{w}")
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: arr})[0]

    def forward_tensor(self, x: Any) -> Any:
        """(B, 3M, h, w) 0-255 -> (B, K, h, w) logits (h x w: the native size unless exported dynamic);
        a torch tensor gives a torch tensor, a NumPy array a NumPy array."""
        if _is_tensor(x):
            import torch

            return torch.from_numpy(self._run(x.detach().cpu().numpy()))
        return self._run(np.asarray(x))

    def _stack(self, batched_input: Sequence[Mapping[str, np.ndarray]]) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """NumPy twin of :func:`panosamic.student.model.stack_inputs`."""
        if isinstance(batched_input, Mapping):
            batched_input = [batched_input]
        if len(batched_input) == 0:
            raise ValueError("batched_input is empty")
        h, w = self.native_size
        stacked, sizes = [], []
        for i, sample in enumerate(batched_input):
            missing = [m for m in self.modalities if m not in sample]
            if missing:
                raise ValueError(f"sample {i}: missing modality {missing[0]!r} (the model uses {list(self.modalities)})")
            mods = []
            for m in self.modalities:
                x = np.asarray(sample[m], dtype=np.float32)
                if x.ndim != 3 or x.shape[0] != 3 or x.shape[2] != 2 * x.shape[1]:
                    raise ValueError(f"sample {i}, {m}: expected shape (3, H, 2H), got {tuple(x.shape)}")
                if m == "image":
                    sizes.append((int(x.shape[1]), int(x.shape[2])))
                nearest = m in NEAREST_MODALITIES
                mods.append(numpy_resize.resize(x, (h, w), "nearest" if nearest else "bilinear",
                                                antialias=not nearest and x.shape[-1] > w))  # fmt: skip
            stacked.append(np.concatenate(mods, axis=0))
        return np.stack(stacked), sizes

    def forward(self, batched_input: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        samples = [batched_input] if isinstance(batched_input, Mapping) else list(batched_input)
        if any(_is_tensor(v) for s in samples for v in s.values()):
            from panosamic.student.model import resize_outputs, stack_inputs

            x, sizes = stack_inputs(samples, self.modalities, self.native_size)
            return resize_outputs(self.forward_tensor(x), sizes)
        x, sizes = self._stack(samples)
        logits = self._run(x)
        return [{"sem_preds": numpy_resize.circular_resize(logits[i], size), "instance_masks": []}
                for i, size in enumerate(sizes)]

    __call__ = forward

    # ------------------------------------------------------------------ what predict() uses
    def eval(self) -> OnnxStudent:
        return self

    def train(self, mode: bool = True) -> OnnxStudent:
        if mode:
            raise ValueError("an ONNX student cannot be trained; train the PyTorch student")
        return self

    def parameters(self) -> Iterator[Any]:
        import torch

        return iter([torch.empty(0)])

    def to(self, device: Any) -> OnnxStudent:
        if str(device).split(":")[0] != "cpu":
            raise ValueError("OnnxStudent runs through onnxruntime providers; pass providers=..., not a device")
        return self

    @contextlib.contextmanager
    def inference_options_applied(self, precision: str | None = None, **changes: Any) -> Iterator[None]:
        if precision not in (None, "fp32"):
            raise ValueError(f"the ONNX student runs in fp32, got precision={precision!r}")
        yield
