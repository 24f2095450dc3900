"""Training-time augmentation of descriptors [ours; the author trains without augmentation].

Both transforms act on descriptors directly, which is exact: the positional blocks are lists
of xyz triples in a frame centred on the skeleton's mean point, so a rotation about that point
commutes with them, and the block that does not turn with the skeleton, positions in a local
frame (DescriptorConfig.local_frame), comes last and is left as it is. Relabelling the persons
commutes with a descriptor that measures nothing from given joints (no local_frame, and no
root_joint unless each person has its own root at the same place in its block); with those, a
swap is refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mrmp.skeleton import DescriptorConfig, Layout, describe_batch
from training.train import Augment


@dataclass(frozen=True)
class AugmentConfig:
    """swap_persons: exchange the persons' joints in half the samples (SBU's labels name the
    interaction, not who acts); rotate_degrees: rotate each sample about the vertical axis by
    an angle drawn uniformly in +-rotate_degrees; all_axes: rotate about each of the three
    axes in turn instead (a hand seen from a head-mounted camera has no fixed vertical)."""

    swap_persons: bool = False
    rotate_degrees: float = 0.0
    vertical_axis: int = 1
    all_axes: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def active(self) -> bool:
        return self.swap_persons or self.rotate_degrees > 0


def crop_views(
    sequences: Sequence[Any],
    descriptor: DescriptorConfig,
    num_joints: int,
    views: int,
    crop_min: float,
    seed: int,
) -> Tensor:
    """(views, N, J, F) descriptors: view 0 of each sequence whole, the others random
    contiguous crops of round(T * u) frames, u uniform in [crop_min, 1] (at least one frame),
    drawn from `seed`. The descriptor sees a shorter sequence, not a masked one: a crop is an
    action caught a little late or left a little early."""
    rng = np.random.default_rng(seed)
    out = [describe_batch(sequences, descriptor, num_joints)]
    for _ in range(views - 1):
        crops = []
        for seq in sequences:
            t = len(seq)
            length = max(round(t * rng.uniform(crop_min, 1.0)), 1)
            start = int(rng.integers(0, t - length + 1))
            crops.append(seq[start : start + length])
        out.append(describe_batch(crops, descriptor, num_joints))
    return torch.from_numpy(np.stack(out))


def person_swap(layout: Layout) -> Tensor:
    """Node permutation that exchanges person p's joints with person (p+1)'s (cyclically)."""
    per = layout.num_joints // layout.persons
    order = [((j // per + 1) % layout.persons) * per + j % per for j in range(layout.num_joints)]
    return torch.tensor(order)


def rotations(axes: list[int], limit: float, b: int, gen: torch.Generator) -> Tensor:
    """(b, 3, 3) products of rotations about `axes` in turn, each by an angle in +-limit."""
    rot = torch.eye(3).repeat(b, 1, 1)
    for axis in axes:
        theta = (torch.rand(b, generator=gen) * 2 - 1) * limit
        c, s = torch.cos(theta), torch.sin(theta)
        i, k = [a for a in range(3) if a != axis]
        step = torch.eye(3).repeat(b, 1, 1)
        step[:, i, i], step[:, i, k], step[:, k, i], step[:, k, k] = c, -s, s, c
        rot = rot @ step
    return rot


def _swap_commutes(descriptor: DescriptorConfig, layout: Layout) -> bool:
    """Whether exchanging the persons' joints commutes with `descriptor`: a block measured
    from given joints (a local frame, a root) would hand one person's to the other, unless
    each person is measured from its own root, the same joint of its own body."""
    if descriptor.local_frame is not None:
        return False
    roots = descriptor.person_roots()
    if not roots:
        return True
    per = layout.num_joints // layout.persons
    return len(roots) == layout.persons and all(
        r == roots[0] + p * per for p, r in enumerate(roots)
    )


def make_augment(
    config: AugmentConfig, layout: Layout, descriptor: DescriptorConfig | None = None
) -> Augment | None:
    """The augmentation of `config` for descriptors made with `descriptor` (None: every
    feature is an xyz triple in the sensor's frame)."""
    if not config.active:
        return None
    if config.swap_persons and descriptor is not None and not _swap_commutes(descriptor, layout):
        raise ValueError(
            "swap_persons needs a descriptor without local_frame, and without root_joint "
            "unless it gives each person its own root at the same place"
        )
    rotating_features = None if descriptor is None else descriptor.rotating_features()
    swap = person_swap(layout) if config.swap_persons and layout.persons > 1 else None
    axes = [0, 1, 2] if config.all_axes else [config.vertical_axis]
    limit = math.radians(config.rotate_degrees)

    def augment(x: Tensor, gen: torch.Generator) -> Tensor:
        b, j, f = x.shape
        if swap is not None:
            flip = torch.rand(b, generator=gen) < 0.5
            x = torch.where(flip[:, None, None], x[:, swap], x)
        if limit > 0:
            rot = rotations(axes, limit, b, gen)
            n = f if rotating_features is None else rotating_features
            if n % 3 or n > f:
                raise ValueError(f"{n} rotating features of {f} are not xyz triples")
            triples = x[..., :n].reshape(b, j, -1, 3)
            turned = torch.einsum("bjmc,bdc->bjmd", triples, rot).reshape(b, j, n)
            x = torch.cat([turned, x[..., n:]], dim=-1) if n < f else turned
        return x

    return augment
