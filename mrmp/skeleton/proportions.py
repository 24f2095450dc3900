"""A skeleton's proportions: each bone's share of its person's summed bone length, the median
over a sequence's frames. Shares are free of unit and position (the descriptor's invariances), so
the range of shares seen in training tells whether a request's skeleton is built like the ones
the model knows.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np


def person_bones(
    bones: Sequence[tuple[int, int]], num_joints: int, persons: int
) -> list[tuple[int, int]]:
    """The bones whose two joints belong to one person (a link between persons is no bone)."""
    per = num_joints // persons
    return [(a, b) for a, b in bones if a // per == b // per]


def bone_name(joint_names: Sequence[str], bone: tuple[int, int]) -> str:
    """A bone as its joints' names, e.g. "A_HEAD-A_NECK"."""
    return f"{joint_names[bone[0]]}-{joint_names[bone[1]]}"


def bone_shares(
    x: np.ndarray, bones: Sequence[tuple[int, int]], num_joints: int, persons: int
) -> np.ndarray:
    """(B,) float64: for each of the B `bones` (joint pairs within one person, as
    `person_bones` gives), its length's share of the summed length of its person's bones, the
    median over the frames of the (T, J, 3) sequence `x`. NaN for a bone whose person has no
    bone length in any frame. `bone_shares_batch` of a batch of one."""
    return bone_shares_batch([x], bones, num_joints, persons)[0]


def bone_shares_batch(
    xs: Sequence[np.ndarray], bones: Sequence[tuple[int, int]], num_joints: int, persons: int
) -> np.ndarray:
    """(S, B) float64: `bone_shares` of each of S (T_s, J, 3) sequences (frame counts may
    differ), computed in float64 over all their frames at once. A person's shares are NaN
    where its own bone lengths are not finite; the other persons' are unaffected."""
    a, b, owner, starts, order = _bone_index(tuple(map(tuple, bones)), num_joints, persons)
    # float64 whatever the input's type, so that a sequence's shares do not depend on the
    # sequences it is measured with (np.concatenate would upcast float32 beside float64).
    x = np.concatenate(xs, dtype=np.float64) if len(xs) > 1 else np.asarray(xs[0], np.float64)
    # Each bone's two ends as rows of the (T * J, 3) points: numpy's take of whole rows is 3x
    # faster than of the joint axis of (T, J, 3) (x.take(a, axis=1)) on a batch's frames.
    first = np.arange(0, x.shape[0] * num_joints, num_joints)[:, None]
    points = x.reshape(-1, 3)
    # Huge coordinates overflow to inf and give NaN shares (the descriptor refuses them).
    # No BLAS and no einsum over the coordinates: on the request path, for every sequence.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        d = points.take(first + a, axis=0)  # (T, B, 3), the bones by person
        d -= points.take(first + b, axis=0)
        d *= d
        lengths = np.sqrt(d[..., 0] + d[..., 1] + d[..., 2])  # (T, B)
        # Each person's bones side by side: their total, a sum over each person's columns.
        totals = np.add.reduceat(lengths, starts, axis=1)
        shares = lengths / totals[:, owner]
    frames = [len(s) for s in xs]
    if len(set(frames)) == 1:  # one median over a (S, T, B) array
        medians = _median_over_frames(shares.reshape(len(xs), frames[0], -1))
    else:
        ends = np.cumsum(frames)
        each = [shares[e - t : e][None] for e, t in zip(ends, frames, strict=True)]
        medians = np.concatenate([_median_over_frames(s) for s in each])
    return medians[:, order]  # in the bones' own order


@functools.lru_cache(maxsize=64)
def _bone_index(
    bones: tuple[tuple[int, int], ...], num_joints: int, persons: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The bones sorted by person (stably): their first and second joints, each one's position
    among the persons that have bones, the first bone of each such person, and where each bone
    of `bones` is among the sorted ones. The same for every request of a layout, so made
    once."""
    first, second = (np.asarray(ends, dtype=np.int64) for ends in zip(*bones, strict=True))
    person = first // (num_joints // persons)
    by_person = np.argsort(person, kind="stable")
    _, starts, owner = np.unique(person[by_person], return_index=True, return_inverse=True)
    order = np.argsort(by_person)
    index = (first[by_person], second[by_person], owner, starts, order)
    for array in index:
        array.flags.writeable = False
    return index


def _median_over_frames(shares: np.ndarray) -> np.ndarray:
    """(S, B) median over axis 1 of (S, T, B) shares, NaN where a bone has no finite share."""
    finite = np.isfinite(shares)
    if finite.all():  # the usual case: no NaN to leave out
        # np.median's own arithmetic (the middle value, or the mean of the middle two: their
        # sum halved) on a sort, at a fifth of its cost on a sequence's few frames.
        ordered = np.sort(shares, axis=1)
        half = shares.shape[1] // 2
        if shares.shape[1] % 2:
            return ordered[:, half]
        return (ordered[:, half - 1] + ordered[:, half]) / 2.0
    shares = np.where(finite, shares, np.nan)
    out = np.full(shares.shape[::2], np.nan)
    seen = ~np.isnan(shares).all(axis=1)  # (S, B)
    with np.errstate(invalid="ignore"):
        medians = np.nanmedian(np.where(seen[:, None], shares, 0.0), axis=1)
    out[seen] = medians[seen]
    return out


# How far beyond the shares seen in training a share may lie before it is unusual, as a fraction
# of the seen range's width on each side. With the seen range exactly, 9-19% of the sequences
# of a held-out SBU fold (subjects never seen) fall outside it; with half the width on each
# side, 0-4% (folds 0-4, stats from the other four folds).
SHARE_MARGIN = 0.5


def share_bounds(
    sequences: Sequence[np.ndarray],
    bones: Sequence[tuple[int, int]],
    joint_names: Sequence[str],
    persons: int,
) -> dict[str, tuple[float, float]]:
    """Per bone within one person, named by its joints, the (low, high) share of its person's
    summed bone length that a skeleton built like the training ones has: the range of the
    training sequences' shares (each a median over frames), widened by `SHARE_MARGIN` of its
    width on each side and clipped to [0, 1]. `sequences`: (T, J, 3) arrays; bones as in the
    layout (links between persons are left out)."""
    joints = len(joint_names)
    within = person_bones(bones, joints, persons)
    xs = [np.asarray(s, dtype=np.float64) for s in sequences]
    shares = bone_shares_batch(xs, within, joints, persons)
    low, high = np.nanmin(shares, axis=0), np.nanmax(shares, axis=0)
    pad = SHARE_MARGIN * (high - low)
    return {
        bone_name(joint_names, bone): (
            round(float(max(lo - p, 0.0)), 6),
            round(float(min(hi + p, 1.0)), 6),
        )
        for bone, lo, hi, p in zip(within, low, high, pad, strict=True)
    }
