"""The attention branches of an MCBAM fusion block."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from panosamic.config.checks import ConfigError, as_bool, as_choice, as_int, field_names, strip_keys

Aggregation = Literal["none", "mean", "max"]
AGGREGATIONS = ("none", "mean", "max")


@dataclass(frozen=True)
class AttentionConfig:
    """One attention branch of an MCBAM fusion block (channel or spatial).

    ``moving_attention``: attention in sliding ``window_size`` windows with ``stride`` (MCBAM)
    instead of once over the whole map (plain CBAM). ``aggregation``: how overlapping windows
    merge ("none": sum of logits then sigmoid; "mean": mean of sigmoids; "max":
    sigmoid(15 (sum of sigmoids - 0.5))). ``kernel_size``: spatial branch; ``bias``: channel MLP.
    """

    moving_attention: bool = True
    window_size: int = 8
    stride: int = 4
    aggregation: Aggregation = "none"
    kernel_size: int = 5
    bias: bool = False
    efficient_attention: bool = False
    gamma: int = 2
    b: int = 1

    def __post_init__(self) -> None:
        self.check("attention")

    def check(self, where: str) -> None:
        for name in ("moving_attention", "bias", "efficient_attention"):
            as_bool(f"{where}.{name}", getattr(self, name))
        for name in ("window_size", "stride", "kernel_size", "gamma", "b"):
            as_int(f"{where}.{name}", getattr(self, name))
        as_choice(f"{where}.aggregation", self.aggregation, AGGREGATIONS)
        if self.kernel_size % 2 != 1:
            raise ConfigError(f"{where}.kernel_size: expected an odd integer, got {self.kernel_size}")
        if self.efficient_attention:
            raise ConfigError(f"{where}.efficient_attention (ECA): not supported; no published configuration uses it")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "attention") -> AttentionConfig:
        d = strip_keys(where, d, field_names(cls))
        try:
            return cls(**d)
        except ConfigError as e:
            raise ConfigError(str(e).replace("attention.", f"{where}.", 1)) from None


def attention_from(where: str, d: Any) -> AttentionConfig | None:
    return None if d is None else AttentionConfig.from_dict(d, where)


def attention_dict(a: AttentionConfig | None) -> dict[str, Any] | None:
    return None if a is None else dataclasses.asdict(a)
