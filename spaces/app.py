"""Hugging Face Space entry point of the panosamic demo (the same page as ``panosamic demo``).

A Space is configured by environment variables (Space settings -> Variables):

* ``PANOSAMIC_CHECKPOINT`` -- any checkpoint the library loads: a published variant name (default:
  ``stanford2d3ds-vith-rgb-fold1``; ``panosamic info`` lists them), a Hub repo id, a folder...;
* ``PANOSAMIC_SUBFOLDER``  -- the subfolder of a Hub repo id (optional);
* ``PANOSAMIC_DEVICE``     -- ``auto`` (default: CUDA on GPU hardware, else the CPU), ``cpu``, ``cuda``;
* ``PANOSAMIC_REFINE``     -- ``1`` to offer SAM refinement (loads SAM's instance branch).

Locally: ``uv run --extra demo python spaces/app.py`` (same variables). See README, "Web demo".
"""

from __future__ import annotations

import os

from panosamic.apps.demo.app import build_demo, launch_demo
from panosamic.apps.demo.backend import load_demo_model

#: The published variant the Space serves unless PANOSAMIC_CHECKPOINT says otherwise (RGB only).
DEFAULT_VARIANT = "stanford2d3ds-vith-rgb-fold1"


def main() -> None:
    demo_model = load_demo_model(
        os.environ.get("PANOSAMIC_CHECKPOINT", DEFAULT_VARIANT),
        subfolder=os.environ.get("PANOSAMIC_SUBFOLDER") or None,
        device=os.environ.get("PANOSAMIC_DEVICE", "auto"),
        refine=os.environ.get("PANOSAMIC_REFINE", "0") == "1",
    )
    # Spaces set GRADIO_SERVER_NAME=0.0.0.0 and the port; launch() reads them when host/port are None.
    launch_demo(build_demo(demo_model), host=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"), port=None)


if __name__ == "__main__":
    main()
