"""Missing detections: how a sequence with joints, frames or persons the tracker did not see is
made whole before it is described, and the record of what was missing (shared/DESIGN.md, the input
contract).

Kinect SDKs, OpenNI, OpenPose and the NTU RGB+D tools write a joint they did not detect as
(0, 0, 0); a real joint is never exactly at the sensor's origin. The rule, applied alike in
training (corrupted views), evaluation and serving:

1. A joint is missing when all three of its coordinates are exactly 0 (and, when asked, when
   any of them is NaN).
2. A frame with no joint observed is dropped: the sequence is described from its other frames.
3. A joint missing in some frames is interpolated linearly in time between the frames where it
   was observed, and held at its first or last observed position before or after them.
4. A joint missing in every frame takes, frame by frame, the position of the nearest observed
   joint of its own person along the bones (the lowest index on a tie): a missing hand sits at
   its wrist or elbow.
5. A person with no joint observed in any frame collapses onto the mean of the observed joints,
   frame by frame (the descriptor then sees that person at one point).
A sequence with no joint observed at all cannot be described: `NoSkeletonError`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mrmp.skeleton.descriptor import SkeletonError


class NoSkeletonError(SkeletonError):
    """Every joint of every frame is missing: there is no skeleton to describe."""


@dataclass(frozen=True)
class MissingReport:
    """What was missing in one sequence of `frames` frames: the frames dropped (no joint
    observed), the joints missing in every kept frame, the joints missing in some of them, and
    the persons never observed. Indices are 0-based; joints index the layout's joint order."""

    frames: int
    dropped_frames: tuple[int, ...] = ()
    absent_joints: tuple[int, ...] = ()
    partial_joints: tuple[int, ...] = ()
    absent_persons: tuple[int, ...] = ()

    @property
    def complete(self) -> bool:
        """Nothing was missing."""
        return not (
            self.dropped_frames or self.absent_joints or self.partial_joints or self.absent_persons
        )


def missing_mask(x: np.ndarray, nan_is_missing: bool = False) -> np.ndarray:
    """(T, J) bool: the joints of a (T, J, 3) sequence that the tracker did not detect."""
    zero = x == 0
    # Three slices, not .all(axis=-1): numpy's reduction over a length-3 axis is 4x slower.
    mask = zero[..., 0] & zero[..., 1] & zero[..., 2]
    if nan_is_missing:
        mask |= np.isnan(x).any(axis=-1)
    return mask


def fill_missing(
    x: np.ndarray,
    persons: int,
    bones: Sequence[tuple[int, int]],
    nan_is_missing: bool = False,
) -> tuple[np.ndarray, MissingReport]:
    """A (T', J, 3) float64 sequence with every missing joint filled by the module's rule
    (T' <= T: frames with no joint observed are dropped), and what was missing.

    x: (T, J, 3) coordinates; persons: how many equal blocks of joints the layout holds; bones:
    the layout's (i, j) joint pairs. Raises NoSkeletonError when no joint is observed at all.
    A sequence with nothing missing is returned as it is (no copy).
    """
    frames = x.shape[0]
    # No coordinate at 0 (NaN counts as non-zero): nothing missing, the common case, found fast.
    if x.all() and not (nan_is_missing and np.isnan(x).any()):
        return x, MissingReport(frames)
    mask = missing_mask(x, nan_is_missing)
    if not mask.any():
        return x, MissingReport(frames)
    kept = ~mask.all(axis=1)
    if not kept.any():
        raise NoSkeletonError(
            f"no skeleton: every joint of all {frames} frame(s) is missing "
            + ("((0, 0, 0) or NaN)" if nan_is_missing else "(0, 0, 0)")
        )
    dropped = tuple(int(t) for t in np.flatnonzero(~kept))
    x = np.array(x[kept], dtype=np.float64)
    mask = mask[kept]
    seen_in = (~mask).sum(axis=0)  # (J,) frames in which each joint was observed
    partial = tuple(int(j) for j in np.flatnonzero((seen_in > 0) & (seen_in < len(x))))
    times = np.arange(len(x))
    for j in partial:
        seen = ~mask[:, j]
        for c in range(3):
            x[:, j, c] = np.interp(times, times[seen], x[seen, j, c])
    absent = np.flatnonzero(seen_in == 0)
    per = x.shape[1] // persons
    absent_persons = tuple(
        p for p in range(persons) if (seen_in[p * per : (p + 1) * per] == 0).all()
    )
    if absent.size:
        observed = seen_in > 0
        centre = x[:, observed].mean(axis=1)  # (T', 3): the observed joints' mean
        for j in absent:
            p = int(j) // per
            if p in absent_persons:
                x[:, j] = centre
            else:
                x[:, j] = x[:, _nearest_observed(int(j), observed, bones, p * per, (p + 1) * per)]
    report = MissingReport(
        frames,
        dropped,
        tuple(int(j) for j in absent),
        partial,
        absent_persons,
    )
    return x, report


def _nearest_observed(
    joint: int, observed: np.ndarray, bones: Sequence[tuple[int, int]], lo: int, hi: int
) -> int:
    """The observed joint in [lo, hi) nearest to `joint` along the bones (breadth first, the
    lowest index on a tie); the lowest observed index in [lo, hi) when none is connected."""
    neighbours: dict[int, list[int]] = {}
    for a, b in bones:
        if lo <= a < hi and lo <= b < hi:
            neighbours.setdefault(a, []).append(b)
            neighbours.setdefault(b, []).append(a)
    seen, frontier = {joint}, deque([joint])
    while frontier:
        level = sorted(frontier)
        frontier.clear()
        hits = [j for j in level if observed[j]]
        if hits:
            return hits[0]
        for j in level:
            for k in neighbours.get(j, ()):
                if k not in seen:
                    seen.add(k)
                    frontier.append(k)
    return lo + int(np.flatnonzero(observed[lo:hi])[0])
