"""Configuration: what defines a model (:class:`ModelConfig`, which *is* ``config.json``), how it
is trained (:class:`TrainingConfig`), and the reference's JSON files (:class:`PanoSAMicConfig`),
which hold the fusion settings of an architecture together with its training settings.

Every field is checked for type and range when read; an error names the file, the field, the
value and what is allowed. Unknown keys are refused at every level. The only escape is the
reference's comment convention: keys starting with ``//`` or ``_comment`` are ignored.
"""

from panosamic.config.attention import AGGREGATIONS, AttentionConfig
from panosamic.config.checks import ConfigError, is_comment_key
from panosamic.config.model import BASIC_FUSIONS, CONFIG_FORMAT_VERSION, ModelConfig
from panosamic.config.reference import PanoSAMicConfig
from panosamic.config.training import (
    OPTIMIZERS,
    LossConfig,
    LRSchedulerConfig,
    ScheduledLossConfig,
    TrainingConfig,
)

__all__ = [
    "AGGREGATIONS",
    "BASIC_FUSIONS",
    "CONFIG_FORMAT_VERSION",
    "OPTIMIZERS",
    "AttentionConfig",
    "ConfigError",
    "LRSchedulerConfig",
    "LossConfig",
    "ModelConfig",
    "PanoSAMicConfig",
    "ScheduledLossConfig",
    "TrainingConfig",
    "is_comment_key",
]
