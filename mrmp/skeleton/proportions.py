"""A skeleton's proportions: each bone's share of its person's summed bone length, the median
over a sequence's frames. Shares are free of unit and position (the descriptor's invariances), so
the range of shares seen in training tells whether a request's skeleton is built like the ones
the model knows.
"""

from __future__ import annotations

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
    bone length in any frame."""
    a, b = (np.asarray(ends, dtype=np.int64) for ends in zip(*bones, strict=True))
    lengths = np.linalg.norm(x[:, a] - x[:, b], axis=-1)  # (T, B)
    owner = a // (num_joints // persons)
    totals = np.stack([lengths[:, owner == p].sum(axis=1) for p in range(persons)], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = lengths / totals[:, owner]
    shares[~np.isfinite(shares)] = np.nan
    out = np.full(len(a), np.nan)
    seen = ~np.isnan(shares).all(axis=0)
    out[seen] = np.nanmedian(shares[:, seen], axis=0)
    return out
