"""Per-joint trajectory descriptor: the GCN's node features (METHOD.md section 6).

The same `describe` is used for training, evaluation and serving, so a sequence is normalized
and summarized identically everywhere.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

_EPS = 1e-12
# The smallest spread whose square (the variance) is a normal float64.
_SMALLEST_SPREAD = float(np.sqrt(np.finfo(np.float64).tiny))


class SkeletonError(ValueError):
    """An input skeleton sequence that cannot be described; raised as one of its subclasses."""


class SkeletonShapeError(SkeletonError):
    """Not a numeric (T, J, 3) array, or joints that the descriptor's options do not fit."""


class NonFiniteSkeletonError(SkeletonError):
    """NaN or Inf among the coordinates."""


class SkeletonOverflowError(SkeletonError):
    """Finite coordinates too large to normalize."""


class SkeletonUnderflowError(SkeletonError):
    """Points that differ, but by so little that their spread's square (the variance) is below
    the smallest normal float64: too small to normalize."""


class SkeletonNoExtentError(SkeletonError):
    """Every joint of every frame at one point: a skeleton with no spatial extent."""


@dataclass(frozen=True)
class DescriptorConfig:
    """chunks: temporal chunks M; velocity: also append each chunk's mean per-frame displacement;
    root_joint: also append each chunk's mean position relative to that joint in the same frame
    (the shape of a hand about its wrist, say), a named option beyond the author's descriptor;
    a tuple of P joints splits the skeleton into P equal blocks of joints (persons), each
    relative to its own root (each person's body about its own torso);
    axis_scale: multiply x, y, z by these factors first, to undo a per-axis normalization of
    the sensor's coordinates (SBU's files divide x, y and z by different ranges);
    local_frame: joints (origin, a, b) defining a frame that moves with the body, e.g. the
    palm (wrist, index and little-finger knuckles): origin at `origin`, first axis towards
    `a`, second axis towards `b` made orthogonal to it, third their cross product. Also
    append each chunk's mean position of every joint in that frame, per frame: a shape
    descriptor that the sensor's viewpoint and the body's orientation do not change."""

    chunks: int = 4
    velocity: bool = False
    root_joint: int | tuple[int, ...] | None = None
    axis_scale: tuple[float, float, float] | None = None
    local_frame: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.chunks, bool) or not isinstance(self.chunks, int) or self.chunks < 1:
            raise ValueError(f"chunks must be a positive int, got {self.chunks!r}")
        if not isinstance(self.velocity, bool):
            raise ValueError(f"velocity must be a bool, got {self.velocity!r}")
        if isinstance(self.root_joint, list | tuple):  # JSON lists become tuples
            object.__setattr__(self, "root_joint", tuple(self.root_joint))
        roots = self.person_roots() if isinstance(self.root_joint, int | tuple) else (None,)
        if self.root_joint is not None and (
            not roots or any(isinstance(j, bool) or not isinstance(j, int) or j < 0 for j in roots)
        ):
            raise ValueError(
                "root_joint must be a joint index, a tuple of one per person, or None; "
                f"got {self.root_joint!r}"
            )
        if self.axis_scale is not None:
            scale = tuple(float(v) for v in self.axis_scale)
            if len(scale) != 3 or not all(np.isfinite(v) and v != 0 for v in scale):
                raise ValueError(f"axis_scale must be 3 finite non-zero factors, got {scale!r}")
            object.__setattr__(self, "axis_scale", scale)  # JSON lists become tuples
        if self.local_frame is not None:
            frame = tuple(self.local_frame)
            if (
                len(frame) != 3
                or any(isinstance(j, bool) or not isinstance(j, int) or j < 0 for j in frame)
                or len(set(frame)) != 3
            ):
                raise ValueError(
                    f"local_frame must be 3 distinct joint indices, got {self.local_frame!r}"
                )
            object.__setattr__(self, "local_frame", frame)

    def feature_dim(self) -> int:
        """Features per node: 3*chunks for positions, as many again for each option."""
        options = self.velocity + (self.root_joint is not None) + (self.local_frame is not None)
        return 3 * self.chunks * (1 + options)

    def check_joints(self, num_joints: int) -> None:
        """Raise SkeletonShapeError if a joint the options name is not among `num_joints`."""
        fault = _joints_fault(self, num_joints)
        if fault is not None:
            raise SkeletonShapeError(fault)

    def person_roots(self) -> tuple[int, ...]:
        """root_joint as one root per person (a single root: one person); () without."""
        if self.root_joint is None:
            return ()
        return (self.root_joint,) if isinstance(self.root_joint, int) else self.root_joint

    def rotating_features(self) -> int:
        """How many leading features turn with the skeleton (xyz triples in the sensor's
        frame); the local-frame block, last, does not."""
        return self.feature_dim() - 3 * self.chunks * (self.local_frame is not None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DescriptorConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown DescriptorConfig keys: {sorted(unknown)}")
        return cls(**data)


@functools.lru_cache(maxsize=256)
def _joints_fault(config: DescriptorConfig, num_joints: int) -> str | None:
    """Why the joints `config` names do not fit `num_joints` joints, or None: the same for every
    sequence of a layout, so found once."""
    if isinstance(config.root_joint, tuple):
        persons = len(config.root_joint)
        per = num_joints // persons
        if num_joints % persons or any(
            not p * per <= r < (p + 1) * per for p, r in enumerate(config.root_joint)
        ):
            return (
                f"root joints {config.root_joint} are not one in each of {persons} equal "
                f"blocks of {num_joints} joints"
            )
    elif config.root_joint is not None and config.root_joint >= num_joints:
        return f"root joint {config.root_joint} is not among {num_joints} joints"
    if config.local_frame is not None and max(config.local_frame) >= num_joints:
        return f"local frame {config.local_frame} is not among {num_joints} joints"
    return None


@functools.lru_cache(maxsize=256)
def _root_of(roots: tuple[int, ...], num_joints: int) -> np.ndarray:
    """Each joint's own person's root joint (persons: equal blocks of joints)."""
    root_of = np.repeat(np.asarray(roots), num_joints // len(roots))
    root_of.flags.writeable = False
    return root_of


def _validate(sequence: Any, num_joints: int | None) -> np.ndarray:
    try:
        x = np.asarray(sequence, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SkeletonShapeError(f"sequence is not a numeric (T, J, 3) array: {exc}") from None
    if x.ndim != 3:
        raise SkeletonShapeError(f"sequence must be 3-D (T, J, 3), got shape {x.shape}")
    if x.shape[2] != 3:
        raise SkeletonShapeError(f"last dimension must be 3 (x, y, z), got shape {x.shape}")
    if num_joints is not None and x.shape[1] != num_joints:
        raise SkeletonShapeError(
            f"expected {num_joints} joints, got {x.shape[1]} (shape {x.shape})"
        )
    if x.shape[0] == 0:
        raise SkeletonShapeError(f"sequence has no frames (shape {x.shape})")
    if x.shape[1] == 0:
        raise SkeletonShapeError(f"sequence has no joints (shape {x.shape})")
    check_finite(x)
    return x


def check_finite(x: np.ndarray, nan_allowed: bool = False) -> None:
    """Raise NonFiniteSkeletonError, naming how many values and the first one's frame, joint and
    coordinate, when the (T, J, 3) `x` holds NaN or Inf (Inf only, when `nan_allowed`)."""
    bad = ~np.isfinite(x)
    if nan_allowed:
        bad &= ~np.isnan(x)
    if bad.any():
        where = np.argwhere(bad)
        t, j, c = where[0]
        raise NonFiniteSkeletonError(
            f"sequence contains NaN or Inf in {len(where)} value(s); first at frame {t}, "
            f"joint {j}, coordinate {'xyz'[c]} ({x[t, j, c]})"
        )


@dataclass(frozen=True)
class _Frames:
    """Where B sequences of `frames` frames, stacked one after another, and their M chunks
    start, from the frame counts alone (so found once per count): `offsets` (B,) each
    sequence's first frame, `starts` (B * M,) each chunk's first frame, `counts` (B, M) each
    chunk's frame count, `points` (B,) each sequence's point count (frames x joints)."""

    frames: np.ndarray
    offsets: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    points: np.ndarray


@functools.lru_cache(maxsize=1024)
def _frames_of(frames: tuple[int, ...], M: int, J: int) -> _Frames:
    """The `_Frames` of sequences of `frames` frames and `J` joints in `M` chunks.

    Chunk m spans frames floor(m*T/M) .. floor((m+1)*T/M)-1; when that is empty (T < M) it is
    the single frame floor(m*T/M) (always < T). `np.add.reduceat` over these starts sums exactly
    these frames: for a non-increasing start pair it returns the single frame at the start.
    """
    counts_of = np.array(frames, dtype=np.int64)
    offsets = np.cumsum(counts_of) - counts_of
    T = counts_of[:, None]
    edges = (np.arange(M + 1, dtype=np.int64) * T) // M
    first = np.minimum(edges[:, :-1], T - 1)
    layout = _Frames(
        frames=counts_of,
        offsets=offsets,
        starts=(offsets[:, None] + first).reshape(-1),
        counts=np.maximum(edges[:, 1:] - edges[:, :-1], 1),
        points=(counts_of * J).astype(np.float64),
    )
    for array in (layout.frames, layout.offsets, layout.starts, layout.counts, layout.points):
        array.flags.writeable = False
    return layout


def _centres_and_spreads(
    x: np.ndarray, at: _Frames, points: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(B, 3) mean point of each sequence's frames and joints, and (B,) the RMS distance of its
    points from it; `x` the B sequences' frames one after another, where `at` says, and
    `points` the sequences themselves.

    Uses E|x|^2 - |c|^2 (fast: no broadcast over the whole array) and falls back to the exact
    two-pass form for a sequence where cancellation would cost precision (spread tiny next to
    the offset). Avoids BLAS (vdot/matmul): OpenBLAS threads medium-size dots, costing
    milliseconds per call.
    """
    n = at.points
    centre = np.add.reduceat(x, at.offsets, axis=0).sum(axis=1) / n[:, None]
    squares = np.add.reduceat(np.einsum("tjc,tjc->t", x, x), at.offsets)
    c2 = np.einsum("bc,bc->b", centre, centre)
    var = squares / n - c2
    for b in np.flatnonzero(var <= 1e-6 * c2):
        d = (points[b] - centre[b]).ravel()
        var[b] = float(np.einsum("i,i->", d, d)) / n[b]
    return centre, np.sqrt(np.maximum(var, 0.0))


def _scale_of(x: np.ndarray, centre: np.ndarray, rms: float) -> float:
    """1 / the spread of the points; SkeletonNoExtentError when they are all one point,
    SkeletonUnderflowError when they differ by less than float64 can normalize.

    A spread at or below _EPS of the skeleton's size (float rounding of a constant sequence's
    mean gives such a spread) is checked against the points themselves."""
    if rms > _EPS * (1.0 + float(np.abs(centre).max())):
        return 1.0 / rms
    if (x == x[0, 0]).all():
        raise SkeletonNoExtentError("no spatial extent: every joint of every frame is at one point")
    if rms < _SMALLEST_SPREAD:
        raise SkeletonUnderflowError(
            f"the points' spread ({rms:.3g}) is too small to normalize (underflow); "
            f"send coordinates whose spread is at least {_SMALLEST_SPREAD:.3g}"
        )
    return 1.0 / rms


def _in_local_frame(x: np.ndarray, frame: tuple[int, int, int]) -> np.ndarray:
    """(T, J, 3) coordinates of every joint in the per-frame frame given by joints
    (origin, a, b). A frame that is degenerate next to the skeleton's own size in that frame
    (a on the origin, or b on the line through them) gives zeros for that frame."""
    o, a, b = frame
    rel = x - x[:, o : o + 1]
    size = np.linalg.norm(rel, axis=-1).max(axis=1, keepdims=True)  # (T, 1)
    u = rel[:, a]
    nu = np.linalg.norm(u, axis=-1, keepdims=True)
    u = u / np.maximum(nu, _EPS)
    v = rel[:, b] - (rel[:, b] * u).sum(-1, keepdims=True) * u
    nv = np.linalg.norm(v, axis=-1, keepdims=True)
    v = v / np.maximum(nv, _EPS)
    tol = 1e-6 * size
    ok = (nu > tol) & (nv > tol) & (size > 0)
    axes = np.stack([u, v, np.cross(u, v)], axis=1) * ok[:, :, None]  # (T, 3 axes, 3)
    return np.einsum("tjc,tdc->tjd", rel, axes)


def describe(
    sequence: Any, config: DescriptorConfig | None = None, num_joints: int | None = None
) -> np.ndarray:
    """(J, F) float32 node features of one (T, J, 3) sequence.

    Centres on the mean of all points, divides by their RMS distance from it, then
    takes each of `config.chunks` equal temporal chunks' mean position. Features per joint are
    [chunk0 xyz, chunk1 xyz, ...], followed with `velocity` by the same layout of per-chunk mean
    per-frame displacement (np.gradient over time, normalized likewise; zero for one frame),
    with `root_joint` by positions relative to that joint, with `local_frame` by positions in
    that moving frame. The same computation as `describe_batch`'s, for a batch of one.

    Raises SkeletonShapeError, NonFiniteSkeletonError, SkeletonOverflowError (values too large
    to normalize), SkeletonUnderflowError (a spread too small to normalize) or
    SkeletonNoExtentError (every point the same).
    """
    try:
        return _describe_all([sequence], config or DescriptorConfig(), num_joints)[0]
    except _RefusedError as refused:
        raise refused.error from None


def describe_batch(
    sequences: Iterable[Any], config: DescriptorConfig | None = None, num_joints: int | None = None
) -> np.ndarray:
    """(B, J, F) float32 descriptors of B (T_b, J, 3) sequences (frame counts may differ), as
    `describe` gives each one, computed over the whole batch at once; every sequence must have
    the same joint count. Raises the refusal `describe` raises for the first sequence refused,
    its message starting "sequence b: "."""
    config = config or DescriptorConfig()
    try:
        return _describe_all(list(sequences), config, num_joints)
    except _RefusedError as refused:
        error = refused.error
        raise type(error)(f"sequence {refused.index}: {error}") from None


class _RefusedError(Exception):
    """The first sequence of a batch that cannot be described, and why."""

    def __init__(self, index: int, error: SkeletonError) -> None:
        super().__init__(index, error)
        self.index, self.error = index, error


def _describe_all(
    sequences: list[Any], config: DescriptorConfig, num_joints: int | None
) -> np.ndarray:
    """`describe_batch` with its first refusal raised as _RefusedError: the sequences before it are
    described first, so that the refusal is the one `describe` would raise first in order."""
    xs: list[np.ndarray] = []
    for b, seq in enumerate(sequences):
        try:
            x = _validate(seq, num_joints)
            config.check_joints(x.shape[1])
            if xs and x.shape[1] != xs[0].shape[1]:
                raise SkeletonShapeError(
                    f"{x.shape[1]} joints, but sequence 0 has {xs[0].shape[1]}"
                )
        except SkeletonError as e:
            _describe_valid(xs, config)  # an earlier sequence's refusal comes first
            raise _RefusedError(b, e) from None
        xs.append(x)
    if not xs:
        j = num_joints if num_joints is not None else 0
        return np.zeros((0, j, config.feature_dim()), dtype=np.float32)
    return _describe_valid(xs, config)


def _describe_valid(xs: list[np.ndarray], config: DescriptorConfig) -> np.ndarray:
    """(B, J, F) descriptors of validated (T_b, J, 3) float64 sequences, their frames stacked
    one after another so that every step runs once over the batch; each step keeps to its
    own sequence's frames (np.add.reduceat over the sequences' and chunks' first frames)."""
    if not xs:
        return np.zeros((0, 0, config.feature_dim()), dtype=np.float32)
    x = np.concatenate(xs) if len(xs) > 1 else xs[0]
    B, M, J = len(xs), config.chunks, x.shape[1]
    at = _frames_of(tuple(len(x) for x in xs), M, J)
    if config.axis_scale is not None:
        x = x * np.asarray(config.axis_scale)
        xs = [x[o : o + t] for o, t in zip(at.offsets, at.frames, strict=True)]
    # Overflow is detected on the result below; no RuntimeWarnings on the way.
    with np.errstate(over="ignore", invalid="ignore", under="ignore", divide="ignore"):
        centre, rms = _centres_and_spreads(x, at, xs)
        scale = 1.0 / rms
        refused: list[tuple[int, SkeletonError]] = []
        # A spread at or below _EPS of the skeleton's size is checked against the points.
        for b in np.flatnonzero(~(rms > _EPS * (1.0 + np.abs(centre).max(axis=1)))):
            try:
                scale[b] = _scale_of(xs[b], centre[b], float(rms[b]))
            except SkeletonError as e:
                refused.append((int(b), e))
                break
        inv = (scale[:, None] / at.counts).reshape(B, M, 1, 1)
        # Chunk means are linear in x, so normalize the small (B*M, J, 3) sums, not the whole
        # array.
        sums = np.add.reduceat(x, at.starts, axis=0).reshape(B, M, J, 3)
        parts = [sums * inv - (centre * scale[:, None])[:, None, None, :]]
        if config.velocity:
            gradients = _gradients(x, at.offsets, at.frames)
            parts.append(np.add.reduceat(gradients, at.starts, axis=0).reshape(B, M, J, 3) * inv)
        if config.root_joint is not None:
            root_of = _root_of(config.person_roots(), J)  # each joint's own root
            parts.append((sums - sums[:, :, root_of]) * inv)
        if config.local_frame is not None:
            local = _in_local_frame(x, config.local_frame)
            parts.append(np.add.reduceat(local, at.starts, axis=0).reshape(B, M, J, 3) * inv)
        # (B, M, J, 3) parts -> (B, J, M*3) each, side by side along the features.
        blocks = np.empty((B, J, len(parts), M, 3), dtype=np.float32)
        for k, part in enumerate(parts):
            blocks[:, :, k] = part.transpose(0, 2, 1, 3)
        out = blocks.reshape(B, J, -1)
    # Finite but huge inputs (e.g. 1e200) overflow; a spread that overflows (centred points of
    # about 1e154) would scale the sequence to zeros, so it counts too.
    finite = np.isfinite(out).all(axis=(1, 2)) & np.isfinite(rms)
    if not finite.all():
        error = SkeletonOverflowError("sequence values are too large to normalize (overflow)")
        refused.append((int(np.flatnonzero(~finite)[0]), error))
    if refused:
        raise _RefusedError(*min(refused, key=lambda r: r[0]))
    return out


def _gradients(x: np.ndarray, offsets: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """np.gradient over time of each sequence in `x` (frames one after another, as in
    `_describe_valid`): central differences inside, one-sided at each sequence's ends, zero
    for a sequence of one frame."""
    grad = np.empty_like(x)
    grad[1:-1] = (x[2:] - x[:-2]) / 2.0
    first, last = offsets, offsets + frames - 1
    long = frames > 1
    grad[first[long]] = x[first[long] + 1] - x[first[long]]
    grad[last[long]] = x[last[long]] - x[last[long] - 1]
    grad[first[~long]] = 0.0
    return grad
