"""Training-time augmentation [ours; the author trains without augmentation]: views of each
training sequence made once (temporal crops; detections removed as sensors lose them), and
transforms of descriptors drawn per batch (person swap, rotations).

A missing-detection view zeroes the coordinates a sensor would not have reported (frames, a
person, a limb, scattered joints), then makes the sequence whole by the one rule of
`mrmp.skeleton.missing` and describes it: the path serving takes for such input.

The per-batch transforms act on descriptors directly, which is exact: the positional blocks
are lists of xyz triples in a frame centred on the skeleton's mean point, so a rotation about
that point commutes with them, and the block that does not turn with the skeleton, positions
in a local frame (DescriptorConfig.local_frame), comes last and is left as it is. Relabelling
the persons commutes with a descriptor that measures nothing from given joints (no
local_frame, and no root_joint unless each person has its own root at the same place in its
block); with those, a swap is refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mrmp.skeleton import DescriptorConfig, Layout, describe, describe_batch
from mrmp.skeleton.missing import fill_missing
from training.train import Augment, TrainConfig

# The kinds of missing-detection views (`corrupt_at_random`); `person` needs 2+ persons.
CORRUPTIONS: tuple[str, ...] = ("frames", "person", "limb", "joints")
# Upper bounds of the random draws: the fraction of frames dropped, of (frame, joint)
# detections lost; the k of "every k-th frame dropped" is drawn from EVERY_KTH.
MAX_FRAMES_DROPPED = 0.5
MAX_JOINTS_LOST = 0.3
EVERY_KTH: tuple[int, ...] = (2, 3, 4)


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


def describe_observed(
    sequence: np.ndarray, layout: Layout, descriptor: DescriptorConfig
) -> np.ndarray:
    """(J, F) descriptor of a (T, J, 3) sequence whose joints at (0, 0, 0) are missing: filled
    by `fill_missing`, then described (NoSkeletonError when nothing is observed)."""
    filled, _ = fill_missing(sequence, layout.persons, layout.bones)
    return describe(filled, descriptor, layout.num_joints)


def person_joints(layout: Layout, person: int) -> np.ndarray:
    """The joint indices of `person`'s block (layouts hold persons as equal blocks)."""
    per = layout.num_joints // layout.persons
    return np.arange(person * per, (person + 1) * per)


def limbs(layout: Layout) -> list[tuple[int, ...]]:
    """Each limb of each person: the chain of joints from an end joint (one bone within its
    person) up to, not including, the first joint where three or more bones meet; SBU's arm
    is hand, elbow, shoulder, FPHA's finger tip to knuckle. A person without branching has no
    limbs."""
    per = layout.num_joints // layout.persons
    neighbours: dict[int, list[int]] = {j: [] for j in range(layout.num_joints)}
    for a, b in layout.bones:
        if a // per == b // per:  # bones within a person (SBU also links A's joints to B's)
            neighbours[a].append(b)
            neighbours[b].append(a)
    out = []
    for end in (j for j, n in neighbours.items() if len(n) == 1):
        chain, previous, joint = [end], end, neighbours[end][0]
        while len(neighbours[joint]) == 2:
            chain.append(joint)
            previous, joint = joint, next(k for k in neighbours[joint] if k != previous)
        if len(neighbours[joint]) >= 3:
            out.append(tuple(chain))
    return out


def without(
    sequence: np.ndarray,
    frames: Sequence[int] | np.ndarray | None = None,
    joints: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """A copy of a (T, J, 3) sequence with the given frames' given joints (None: all) zeroed,
    as a tracker writes what it did not detect."""
    out = np.array(sequence)
    rows = np.arange(len(out)) if frames is None else np.asarray(frames, dtype=np.int64)
    cols = np.arange(out.shape[1]) if joints is None else np.asarray(joints, dtype=np.int64)
    out[np.ix_(rows, cols)] = 0
    return out


def every_kth(frames: int, k: int) -> np.ndarray:
    """Frames k-1, 2k-1, ... of `frames`: every k-th frame (k >= 2, so never all of them)."""
    if k < 2:
        raise ValueError(f"k must be >= 2, got {k}")
    return np.arange(k - 1, frames, k)


def random_frames(frames: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """round(frames * fraction) distinct frames drawn at random, at most frames - 1."""
    count = min(round(frames * fraction), frames - 1)
    return np.sort(rng.choice(frames, size=count, replace=False))


def lost_detections(sequence: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A copy with round(fraction * T * J) (frame, joint) detections drawn at random zeroed,
    one detection always kept so that some skeleton is left."""
    t, j, _ = sequence.shape
    count = min(round(fraction * t * j), t * j - 1)
    lost = rng.choice(t * j, size=count, replace=False)
    out = np.array(sequence)
    out.reshape(t * j, 3)[lost] = 0
    return out


def corrupt_at_random(
    sequence: np.ndarray, layout: Layout, rng: np.random.Generator
) -> tuple[str, np.ndarray]:
    """One of CORRUPTIONS, drawn uniformly among those the layout allows, and the sequence
    with those detections zeroed: `frames`, a fraction up to MAX_FRAMES_DROPPED drawn at
    random, or every k-th frame (half the time each); `person`, one person absent; `limb`, a
    random limb absent in every frame; `joints`, up to MAX_JOINTS_LOST of the (frame, joint)
    detections lost at random."""
    kinds = [k for k in CORRUPTIONS if k != "person" or layout.persons > 1]
    arms = limbs(layout)
    if not arms:
        kinds.remove("limb")
    kind = kinds[int(rng.integers(len(kinds)))]
    t = len(sequence)
    if kind == "frames":
        if rng.random() < 0.5:
            dropped = random_frames(t, rng.uniform(0.0, MAX_FRAMES_DROPPED), rng)
        else:
            dropped = every_kth(t, int(rng.choice(EVERY_KTH)))
        return kind, without(sequence, frames=dropped)
    if kind == "person":
        person = int(rng.integers(layout.persons))
        return kind, without(sequence, joints=person_joints(layout, person))
    if kind == "limb":
        return kind, without(sequence, joints=list(arms[int(rng.integers(len(arms)))]))
    return kind, lost_detections(sequence, rng.uniform(0.0, MAX_JOINTS_LOST), rng)


def missing_views(
    sequences: Sequence[np.ndarray],
    layout: Layout,
    descriptor: DescriptorConfig,
    views: int,
    seed: int,
) -> Tensor:
    """(views, N, J, F) descriptors of `views` missing-detection views of each sequence, each
    a `corrupt_at_random` draw (from `seed`) filled and described as serving does."""
    rng = np.random.default_rng([seed, 1])  # a stream apart from the crops' (seed)
    out = np.stack(
        [
            np.stack(
                [
                    describe_observed(corrupt_at_random(s, layout, rng)[1], layout, descriptor)
                    for s in sequences
                ]
            )
            for _ in range(views)
        ]
    )
    return torch.from_numpy(out)


def training_views(
    sequences: Sequence[np.ndarray], layout: Layout, descriptor: DescriptorConfig, cfg: TrainConfig
) -> Tensor:
    """(V, N, J, F) views of the training sequences for `cfg`: each whole, its temporal crops
    (temporal_crops - 1), then its missing-detection views (missing_views)."""
    out = crop_views(
        sequences, descriptor, layout.num_joints, cfg.temporal_crops, cfg.crop_min, cfg.seed
    )
    if cfg.missing_views > 0:
        lost = missing_views(sequences, layout, descriptor, cfg.missing_views, cfg.seed)
        out = torch.cat([out, lost])
    return out


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
