"""The reference's import path of the instance/semantic fusion (kept for its users)."""

from panosamic.modeling.refinement import refine_semantic_with_instances

__all__ = ["refine_semantic_with_instances"]
