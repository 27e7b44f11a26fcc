"""What the super-resolution stage promises its callers (metrics, generation, training).

The chain is low-res generator -> super-resolution network. Callers never guess a network's
sizes or context from its config: they read them here.

* `SuperResolution` (a `typing.Protocol`, checkable with `isinstance`) names the interface:
  `lr_size` and `hr_size` `(h, w)`, `context` (low-res frames needed on each side of an output
  frame), `z_dim`, the call `S(lr [n, 3, T + 2 context, h, w], z=[n, z_dim], precision=...)
  -> [n, 3, T, H, W]`, and `segments`, which runs a long low-res clip piece by piece with one
  latent per video (the metrics use it; `generation.pipeline` streams its own windows because
  a transition changes the latent from frame to frame).
* `SuperResolutionBase` is an `nn.Module` that implements `segments` once from the rest of the
  interface; `networks.sres_generator.SuperResGenerator` and the tests' stand-ins derive from it.

The low-res generator's side of the contract lives on `networks.lres_generator.LowResGenerator`
(`size`, `shift_period`, `embedding_lead`, `random_clips`); `check_chain` is the one check that a
pair of networks fits together.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Optional, Protocol, runtime_checkable

import torch
from torch import nn

from torch_utils.misc import module_device

DEFAULT_SEGMENT = 16  # output frames per call of `segments` (bounds memory, not the result)


@runtime_checkable
class SuperResolution(Protocol):
    """A frame-wise super-resolution network: output frame t depends only on low-res frames
    t .. t + 2 context (of the clip it is given) and on the video's latent z."""

    @property
    def lr_size(self) -> tuple[int, int]:
        """(h, w) of the low-res input frames."""
        ...

    @property
    def hr_size(self) -> tuple[int, int]:
        """(h, w) of the output frames."""
        ...

    @property
    def context(self) -> int:
        """Low-res frames needed on each side of an output frame."""
        ...

    @property
    def z_dim(self) -> int:
        """Width of the per-video latent z."""
        ...

    def __call__(
        self, lr_video: torch.Tensor, z: Optional[torch.Tensor] = None, *, precision: str = "auto"
    ) -> torch.Tensor:
        """`[n, 3, T + 2 context, h, w]`, `[n, z_dim]` -> `[n, 3, T, H, W]`."""
        ...

    def segments(
        self,
        lr_video: torch.Tensor,
        z: Optional[torch.Tensor] = None,
        segment_length: int = DEFAULT_SEGMENT,
        generator: Optional[torch.Generator] = None,
        precision: str = "auto",
    ) -> Iterator[torch.Tensor]:
        """The output of one call over `lr_video`, `segment_length` frames at a time."""
        ...


class SuperResolutionBase(nn.Module):
    """A `SuperResolution` network: subclasses provide `lr_size`, `hr_size`, `context`, `z_dim`
    and `forward(lr_video, z=None, ..., precision="auto")`; `segments` is implemented here."""

    lr_size: tuple[int, int]
    hr_size: tuple[int, int]
    context: int
    z_dim: int

    def segments(
        self,
        lr_video: torch.Tensor,
        z: Optional[torch.Tensor] = None,
        segment_length: int = DEFAULT_SEGMENT,
        generator: Optional[torch.Generator] = None,
        precision: str = "auto",
    ) -> Iterator[torch.Tensor]:
        """Super-resolve a clip of any length segment by segment: yields `[n, 3, <=L, H, W]`
        for consecutive output frames, equal to one call over the whole clip (the network is
        frame-wise). Only one segment's low-res window is moved to the device at a time; one z
        per video (drawn from `generator` when None) serves every segment."""
        if segment_length < 1:
            raise ValueError(f"segment_length must be >= 1, got {segment_length}")
        n, t_lr = lr_video.shape[0], lr_video.shape[2]
        frames = t_lr - 2 * self.context
        if frames < 1:
            raise ValueError(
                f"an LR clip of {t_lr} frames is too short: {2 * self.context} context frames "
                "are needed around the output frames"
            )
        if z is None:
            z = torch.randn(n, self.z_dim, generator=generator, device=module_device(self))
        for start in range(0, frames, segment_length):
            count = min(segment_length, frames - start)
            window = lr_video[:, :, start : start + count + 2 * self.context]
            yield self(window, z=z, precision=precision)


def check_lr_size(sres: SuperResolution, lr_size: tuple[int, int], what: str) -> None:
    """ValueError unless `sres` takes low-res frames of `lr_size` (h, w), which `what` makes."""
    if tuple(lr_size) != tuple(sres.lr_size):
        (h, w), (wh, ww) = lr_size, sres.lr_size
        raise ValueError(
            f"the super-resolution network expects {wh}x{ww} low-res frames, but {what} makes "
            f"{h}x{w}; use a matching pair"
        )


def check_chain(lres, sres: SuperResolution | None) -> None:
    """ValueError unless `sres` (if any) takes the frames the low-res generator `lres` makes."""
    if sres is not None:
        check_lr_size(sres, lres.size, "the low-res generator")
