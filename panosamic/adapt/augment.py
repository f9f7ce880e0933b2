"""The student's strong view: the library's flip / roll / RGB permutation plus photometric changes.

:class:`PhotometricAugmentation` changes only the RGB image (0..255, ``3 x H x W``): brightness,
contrast, saturation, per-channel gains (white balance / colour temperature), gamma, Gaussian sensor
noise and Gaussian blur (wrapping around horizontally), each applied with its probability. Unscanned
(exactly black) pixels stay black. :class:`StrongAugmentation` applies the geometric
:class:`~panosamic.data.transforms.PanoramaAugmentation` to every modality and to the pseudo-labels
alike, then the photometric changes to the image. Both draw a fixed number of random values from an
explicit generator, so a view is a function of (seed, epoch, sample).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from panosamic.data.transforms import PanoramaAugmentation

__all__ = ["PhotometricAugmentation", "StrongAugmentation"]


def _uniform(u: float, lo: float, hi: float) -> float:
    return lo + (hi - lo) * u


def _check_range(name: str, lo: float, hi: float, low_bound: float = 0.0) -> None:
    if not low_bound <= lo <= hi:
        raise ValueError(f"{name} must be a range (lo, hi) with {low_bound} <= lo <= hi, got {(lo, hi)}")


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``C x H x W`` (circular horizontally, replicated vertically)."""
    radius = max(int(np.ceil(3 * sigma)), 1)
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    c = image.shape[0]
    out = F.pad(image.unsqueeze(0), (radius, radius, 0, 0), mode="circular")
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    out = F.pad(out, (0, 0, radius, radius), mode="replicate")
    out = F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return out[0]


@dataclass(frozen=True)
class PhotometricAugmentation:
    """Random photometric changes of an RGB panorama (ranges are drawn uniformly)."""

    p: float = 0.8  # probability of each change
    brightness: tuple[float, float] = (0.6, 1.4)
    contrast: tuple[float, float] = (0.6, 1.4)
    saturation: tuple[float, float] = (0.5, 1.5)
    channel_gain: tuple[float, float] = (0.7, 1.3)  # white balance / light colour
    gamma: tuple[float, float] = (0.7, 1.4)
    noise_std: tuple[float, float] = (0.0, 10.0)  # 8-bit levels
    blur_sigma: tuple[float, float] = (0.3, 1.5)  # pixels
    p_blur: float = 0.5

    def __post_init__(self) -> None:
        for name in ("p", "p_blur"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)!r}")
        for name in ("brightness", "contrast", "saturation", "channel_gain", "gamma", "noise_std", "blur_sigma"):
            _check_range(name, *getattr(self, name))
        if self.gamma[0] <= 0 or self.blur_sigma[0] <= 0:
            raise ValueError("gamma and blur_sigma ranges must be > 0")

    def __call__(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A changed copy of ``image`` (``3 x H x W``, 0..255)."""
        u = torch.rand(14, generator=generator, dtype=torch.float64).tolist()
        noise_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        valid = image.sum(0, keepdim=True) > 0
        x = image / 255.0
        if u[0] < self.p:
            x = x * _uniform(u[1], *self.brightness)
        if u[2] < self.p:
            mean = x.mean()
            x = (x - mean) * _uniform(u[3], *self.contrast) + mean
        if u[4] < self.p:
            grey = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).unsqueeze(0)
            x = grey + (x - grey) * _uniform(u[5], *self.saturation)
        if u[6] < self.p:
            gains = torch.tensor([_uniform(v, *self.channel_gain) for v in u[7:10]], dtype=x.dtype, device=x.device)
            x = x * gains.view(3, 1, 1)
        x = x.clamp(0, 1)
        if u[10] < self.p:
            x = x ** _uniform(u[11], *self.gamma)
        if u[12] < self.p_blur:
            x = gaussian_blur(x, _uniform(u[13], *self.blur_sigma))
        x = x * 255.0
        std = _uniform(u[13], *self.noise_std)
        if u[12] >= self.p_blur and std > 0:  # noise or blur: either one softens or roughens the view
            g = torch.Generator(device="cpu").manual_seed(noise_seed)
            x = x + std * torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
        x = x.clamp(1, 255)
        return torch.where(valid, x, torch.zeros_like(x))


@dataclass(frozen=True)
class StrongAugmentation:
    """Geometric augmentation of inputs and labels, then photometric changes of the image."""

    geometric: PanoramaAugmentation = field(default_factory=lambda: PanoramaAugmentation(0.5, 0.5, 0.25))
    photometric: PhotometricAugmentation | None = field(default_factory=PhotometricAugmentation)

    def __call__(
        self, inputs: dict[str, torch.Tensor], labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        inputs, labels = self.geometric(inputs, labels, generator)
        if self.photometric is not None and "image" in inputs:
            inputs = {**inputs, "image": self.photometric(inputs["image"], generator)}
        return inputs, labels
