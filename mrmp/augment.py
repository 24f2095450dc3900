"""Training-time augmentation of descriptors [ours; the author trains without augmentation].

Both transforms act on descriptors directly, which is exact: every descriptor block is a list
of xyz triples in a frame centred on the skeleton's mean point, so a rotation about that point
or a relabelling of the persons commutes with the descriptor.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from mrmp.skeleton import Layout
from mrmp.train import Augment


@dataclass(frozen=True)
class AugmentConfig:
    """swap_persons: exchange the persons' joints in half the samples (SBU's labels name the
    interaction, not who acts); rotate_degrees: rotate each sample about the vertical axis by
    an angle drawn uniformly in +-rotate_degrees."""

    swap_persons: bool = False
    rotate_degrees: float = 0.0
    vertical_axis: int = 1

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def active(self) -> bool:
        return self.swap_persons or self.rotate_degrees > 0


def person_swap(layout: Layout) -> Tensor:
    """Node permutation that exchanges person p's joints with person (p+1)'s (cyclically)."""
    per = layout.num_joints // layout.persons
    order = [((j // per + 1) % layout.persons) * per + j % per for j in range(layout.num_joints)]
    return torch.tensor(order)


def make_augment(config: AugmentConfig, layout: Layout) -> Augment | None:
    if not config.active:
        return None
    swap = person_swap(layout) if config.swap_persons and layout.persons > 1 else None
    axes = [a for a in range(3) if a != config.vertical_axis]
    limit = math.radians(config.rotate_degrees)

    def augment(x: Tensor, gen: torch.Generator) -> Tensor:
        b = x.shape[0]
        if swap is not None:
            flip = torch.rand(b, generator=gen) < 0.5
            x = torch.where(flip[:, None, None], x[:, swap], x)
        if limit > 0:
            theta = (torch.rand(b, generator=gen) * 2 - 1) * limit
            c, s = torch.cos(theta), torch.sin(theta)
            rot = torch.eye(3).repeat(b, 1, 1)
            i, k = axes
            rot[:, i, i], rot[:, i, k], rot[:, k, i], rot[:, k, k] = c, -s, s, c
            triples = x.reshape(b, x.shape[1], -1, 3)
            x = torch.einsum("bjmc,bdc->bjmd", triples, rot).reshape(x.shape)
        return x

    return augment
