"""The command-line flags ``train`` and ``evaluate`` share (the reference's single parser)."""

from __future__ import annotations

import argparse

from panosamic.constants import MODALITIES
from panosamic.data.classes import DATASET_NAMES as DATASETS
from panosamic.specs import VIT_SPECS


def add_shared_arguments(parser: argparse.ArgumentParser, *, config_required: bool = True) -> None:
    """The flags training and evaluation share (the reference's single parser)."""
    parser.add_argument("--dataset_path", "--dataset-path", required=True, help="processed dataset folder")
    parser.add_argument("--config_path", "--config-path", required=config_required,
                        help="config JSON (reference layout, e.g. config_stanford2d3ds_dv.json)")
    parser.add_argument("--experiments_path", "--experiments-path", default="experiments",
                        help="root of the run directories (default: ./experiments)")
    parser.add_argument("--sam_weights_path", "--sam-weights-path", default=None,
                        help="Meta's SAM .pth, or a folder holding it (default: cache, downloaded if missing)")
    parser.add_argument("--num_gpus", "--num-gpus", type=int, default=1,
                        help="processes (one per GPU); under torchrun its WORLD_SIZE is used")
    parser.add_argument("--workers_per_gpu", "--workers-per-gpu", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--batch_size", "--batch-size", type=int, default=1, help="panoramas per process and step")
    parser.add_argument("--vit_model", "--vit-model", default="vit_h", choices=tuple(VIT_SPECS))
    parser.add_argument("--modalities", default=",".join(MODALITIES),
                        help="comma-separated subset of image,depth,normals (always reordered; image required)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16: the encoder blocks in bfloat16, the rest float32 (the same in training, validation and prediction)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
