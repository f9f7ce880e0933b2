"""Start-up cost: CPU seconds a fresh process spends before any work (issue 21).

Each case runs in a child process; its CPU time (user + system, from ``resource.getrusage`` of the
children, so a loaded machine inflates it far less than wall time) is the median of ``--repeat`` runs.
``import torch`` is the yardstick: a command should cost little more than what its work needs.

    uv run python benchmarks/startup.py            # every case, median of 3
    uv run python benchmarks/startup.py --repeat 5 --only "import torch" "predict --help"
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys

#: name -> Python code run in ``python -c``.
IMPORTS: dict[str, str] = {
    "python (empty)": "pass",
    "import numpy, PIL": "import numpy, PIL.Image",
    "import torch": "import torch",
    "import panosamic": "import panosamic",
    "import panosamic.inference": "import panosamic.inference",
    "predict pipeline loaded": "import panosamic.inference.predict, panosamic.inference.scale",
    "load_model resolved": "import panosamic; panosamic.load_model",
    "predict --runtime onnx imports": "import panosamic.cli.predict, panosamic.inference.cli, panosamic.student.onnx",
    # what each command's run() imports before its work (the model and data it then loads excluded)
    "predict (torch) imports": "import panosamic.inference.cli as c, panosamic.model; c.run",
    "train imports": "import panosamic.training.cli",
    "evaluate imports": "import panosamic.evaluation.evaluate",
    "export imports": "import panosamic.cli.export, panosamic.training.export",
    "distill imports": "import panosamic.distill.cli, panosamic.distill.api",
    "adapt imports": "import panosamic.adapt.cli, panosamic.adapt.api",
    "info imports": "import panosamic.info",
    "demo imports": "import panosamic.apps.demo.backend",
}
#: CLI invocations (``python -m panosamic.cli ...``).
COMMANDS: tuple[str, ...] = (
    "--help",
    "info --help",
    "predict --help",
    "train --help",
    "evaluate --help",
    "export --help",
    "distill --help",
    "adapt --help",
    "demo --help",
)


def cpu_seconds(argv: list[str], source: str | None = None) -> tuple[float, int]:
    """(CPU seconds of the child, its exit status)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if source:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH", "")) if p)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    rc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, env=env,
                        cwd=source).returncode  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), rc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="case names to run (default: all)")
    ap.add_argument("--source", help="run another checkout's panosamic (prepended to PYTHONPATH), e.g. a git worktree")
    args = ap.parse_args()
    cases = [(k, [sys.executable, "-c", v]) for k, v in IMPORTS.items()]
    cases += [(f"panosamic {c}", [sys.executable, "-m", "panosamic.cli", *c.split()]) for c in COMMANDS]
    print(f"load average {os.getloadavg()[0]:.1f}; CPU seconds, median of {args.repeat}")
    print(f"{'case':34s} {'CPU s':>7s}  {'x torch':>7s}")
    torch_s = None
    for name, argv in cases:
        if args.only and name not in args.only:
            continue
        runs = [cpu_seconds(argv, args.source) for _ in range(args.repeat)]
        cpu = statistics.median(r[0] for r in runs)
        if name == "import torch":
            torch_s = cpu
        ratio = f"{cpu / torch_s:7.2f}" if torch_s else "      -"
        bad = "" if all(r[1] == 0 for r in runs) else f"  (exit {runs[0][1]})"
        print(f"{name:34s} {cpu:7.2f}  {ratio}{bad}", flush=True)


if __name__ == "__main__":
    main()
