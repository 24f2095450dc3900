"""In-memory labelled skeleton dataset with fold-based splits, and the data root lookup."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrmp.skeleton.layouts import Layout

DATA_DIR_ENV = "MRMP_DATA_DIR"


def data_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Directory holding the dataset folders.

    Order: `explicit`, then $MRMP_DATA_DIR, then `<project root>/../shared/data`.
    """
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


@dataclass
class SkeletonDataset:
    """Variable-length sequences, each (T, J, 3) float32, with labels, folds and ids."""

    name: str
    layout: Layout
    class_names: tuple[str, ...]
    sequences: list[np.ndarray]
    labels: np.ndarray
    folds: np.ndarray
    ids: list[str]

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.folds = np.asarray(self.folds, dtype=np.int64)
        n = len(self.sequences)
        if self.labels.shape != (n,) or self.folds.shape != (n,) or len(self.ids) != n:
            raise ValueError(
                f"dataset {self.name!r}: {n} sequences but labels {self.labels.shape}, "
                f"folds {self.folds.shape}, {len(self.ids)} ids"
            )
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise ValueError(
                f"dataset {self.name!r}: labels outside 0..{len(self.class_names) - 1}"
            )

    def __len__(self) -> int:
        return len(self.sequences)

    def split(self, test_fold: int) -> tuple[np.ndarray, np.ndarray]:
        """(train indices, test indices): test = `test_fold`, train = every other fold."""
        if not np.any(self.folds == test_fold):
            known = sorted(set(self.folds.tolist()))
            raise ValueError(f"dataset {self.name!r}: no fold {test_fold}; folds are {known}")
        test = np.flatnonzero(self.folds == test_fold)
        train = np.flatnonzero(self.folds != test_fold)
        return train.astype(np.int64), test.astype(np.int64)

    def subset(self, indices: Sequence[int] | np.ndarray) -> SkeletonDataset:
        """New dataset holding the given sequences (shared arrays, not copies)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return SkeletonDataset(
            name=self.name,
            layout=self.layout,
            class_names=self.class_names,
            sequences=[self.sequences[i] for i in idx],
            labels=self.labels[idx],
            folds=self.folds[idx],
            ids=[self.ids[i] for i in idx],
        )
