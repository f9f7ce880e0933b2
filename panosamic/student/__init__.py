"""Compact students for deployment: a small timm CNN with wrap-around padding, ONNX export."""

from panosamic.student.config import ARCHITECTURE, STUDENT_BACKBONES, StudentConfig, is_student_config
from panosamic.student.model import PanoStudent

__all__ = ["ARCHITECTURE", "STUDENT_BACKBONES", "PanoStudent", "StudentConfig", "is_student_config"]
