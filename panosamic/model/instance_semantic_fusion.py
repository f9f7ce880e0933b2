"""The reference's import path of the instance/semantic fusion (kept for its users)."""

from panosamic.modeling.instance_semantic_fusion import refine_semantic_with_instances

__all__ = ["refine_semantic_with_instances"]
