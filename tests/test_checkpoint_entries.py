"""The one schema of a training checkpoint's model part: hub.checkpoint.model_entries / read_model_entries."""

from __future__ import annotations

import torch
from conftest import make_tiny_model

from panosamic.hub.checkpoint import model_entries, read_model_entries


class _Wrapped(torch.nn.Module):
    """Stands for DDP: the model under ``module``."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module


def test_panosamic_entries_round_trip_without_instance_branch():
    full = make_tiny_model(semantic_only=False)
    entries = model_entries(_Wrapped(full), semantic_only=True)
    assert not any(k.startswith(("module.", "prompt_encoder.", "_cached_prompt_encoder.", "mask_decoder."))
                   for k in entries["model"])  # fmt: skip
    assert entries["model_config"]["semantic_only"] is True
    back = read_model_entries(entries, "ck.pth")
    assert back.architecture == "panosamic" and back.config == full.config.replace(semantic_only=True)
    semantic = make_tiny_model(semantic_only=True, seed=1)
    semantic.load_state_dict(back.state, strict=True)  # exactly the semantic-only model's tensors
    for k, v in semantic.state_dict().items():
        assert torch.equal(v, full.state_dict()[k])


def test_student_entries_and_the_older_distill_layout_read_alike():
    from panosamic.student import PanoStudent, StudentConfig

    cfg = StudentConfig(backbone="mobilenetv3_small_100", num_classes=5, native_size=(64, 128), decoder_channels=8)
    entries = model_entries(PanoStudent(cfg))
    new = read_model_entries(entries, "new.pth")
    old = read_model_entries({"model": entries["model"], "student_config": cfg.to_dict()}, "old.pth")
    assert new.architecture == old.architecture == "panosamic-student"
    assert new.config == old.config == cfg
    assert new.state.keys() == old.state.keys() == entries["model"].keys()
