"""``python panosamic/evaluation/train.py ...``: the reference's training script path, with its
flags; the same as ``panosamic train`` (implemented in :mod:`panosamic.training.cli`)."""

if __name__ == "__main__":
    import sys

    if not __package__:  # run by path: do not shadow packages with this folder
        sys.path[:] = [p for p in sys.path if not p.endswith(("panosamic/evaluation", "panosamic\\evaluation"))]
    from panosamic.cli import run_script

    sys.exit(run_script("train"))
