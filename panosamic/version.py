"""The library's version (``pyproject.toml`` states the same; ``panosamic.__version__`` re-exports it)."""

__version__ = "0.2.0"
