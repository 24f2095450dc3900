"""Synthetic, easily learnable labelled skeleton motions for any layout (tests, smoke runs)."""

from __future__ import annotations

import numpy as np

from mrmp.skeleton.layouts import Layout

from .dataset import SkeletonDataset


def _rest_pose(layout: Layout, rng: np.random.Generator) -> np.ndarray:
    """(J, 3) rest pose: a random walk along the bones (random in a unit box where unconnected)."""
    J = layout.num_joints
    pose = rng.uniform(-0.5, 0.5, size=(J, 3))
    placed = np.zeros(J, dtype=bool)
    neighbours: list[list[int]] = [[] for _ in range(J)]
    for a, b in layout.bones:
        neighbours[a].append(b)
        neighbours[b].append(a)
    for root in range(J):
        if placed[root]:
            continue
        placed[root] = True
        stack = [root]
        while stack:
            j = stack.pop()
            for k in neighbours[j]:
                if not placed[k]:
                    step = rng.normal(size=3)
                    pose[k] = pose[j] + 0.3 * step / np.linalg.norm(step)
                    placed[k] = True
                    stack.append(k)
    return pose - pose.mean(axis=0)


def make_synthetic(
    layout: Layout,
    num_classes: int = 4,
    per_class: int = 20,
    frames: tuple[int, int] = (12, 40),
    noise: float = 0.02,
    seed: int = 0,
) -> SkeletonDataset:
    """`num_classes * per_class` sequences (class-major order), fold = index % 5.

    Each class moves its own random third of the joints along its own directions with a
    class-specific sinusoid (frequency, phase) over normalized time, plus a class-specific drift.
    Each sequence gets a random length in `frames` (inclusive), amplitude jitter, a random global
    translation and scale, and Gaussian noise (`noise`, in rest-pose units).
    """
    if num_classes < 1 or per_class < 1:
        raise ValueError("num_classes and per_class must be >= 1")
    lo, hi = frames
    if not 1 <= lo <= hi:
        raise ValueError(f"frames must be (min, max) with 1 <= min <= max, got {frames}")
    rng = np.random.default_rng(seed)
    J = layout.num_joints
    rest = _rest_pose(layout, rng)

    # Class motions: joint subset, per-joint displacement directions, frequency, phase, drift.
    n_moving = max(1, J // 3)
    masks = np.zeros((num_classes, J, 1))
    for c in range(num_classes):
        masks[c, rng.choice(J, size=n_moving, replace=False)] = 1.0
    directions = rng.normal(size=(num_classes, J, 3)) * 0.4 * masks
    freqs = rng.uniform(0.5, 2.0, size=num_classes)
    phases = rng.uniform(0.0, 2 * np.pi, size=num_classes)
    drifts = rng.normal(size=(num_classes, 3)) * 0.3

    sequences: list[np.ndarray] = []
    labels: list[int] = []
    for c in range(num_classes):
        for _ in range(per_class):
            T = int(rng.integers(lo, hi + 1))
            u = np.linspace(0.0, 1.0, T)[:, None, None]  # normalized time, (T, 1, 1)
            amp = rng.uniform(0.8, 1.2)
            wave = np.sin(2 * np.pi * freqs[c] * u + phases[c])
            motion = rest + amp * wave * directions[c] + u * drifts[c]
            motion = motion + rng.normal(scale=noise, size=motion.shape)
            scale = rng.uniform(0.5, 2.0)
            offset = rng.uniform(-1.0, 1.0, size=3)
            sequences.append((motion * scale + offset).astype(np.float32))
            labels.append(c)

    n = len(sequences)
    return SkeletonDataset(
        name=f"synthetic-{layout.name}",
        layout=layout,
        class_names=tuple(f"class_{c}" for c in range(num_classes)),
        sequences=sequences,
        labels=np.asarray(labels, dtype=np.int64),
        folds=np.arange(n, dtype=np.int64) % 5,
        ids=[f"synthetic/{i}" for i in range(n)],
    )
