"""Skeleton datasets for training and evaluation: SBU, FPHA, synthetic motions and the
documented dataset folder (docs/datasets.md)."""

from __future__ import annotations

import os

from mrmp.skeleton import get_layout

from .dataset import DATA_DIR_ENV, SkeletonDataset, data_root
from .folder import DatasetFolderError, read_dataset_folder
from .fpha import FPHA_CLASSES, load_fpha, read_fpha_text
from .sbu import SBU_CLASSES, SBU_FOLDS, load_sbu, read_sbu_file
from .synthetic import make_synthetic

DATASETS: tuple[str, ...] = ("sbu", "fpha", "synthetic-sbu", "synthetic-fpha")
_SYNTHETIC_CLASSES = {"sbu": 8, "fpha": 10}


def load_dataset(name: str, root: str | os.PathLike[str] | None = None) -> SkeletonDataset:
    """Load a dataset by name: "sbu", "fpha" (from `data_root(root)`) or "synthetic-<layout>"."""
    if name == "sbu":
        return load_sbu(data_root(root))
    if name == "fpha":
        return load_fpha(data_root(root))
    if name.startswith("synthetic-") and name.removeprefix("synthetic-") in _SYNTHETIC_CLASSES:
        layout_name = name.removeprefix("synthetic-")
        return make_synthetic(
            get_layout(layout_name), num_classes=_SYNTHETIC_CLASSES[layout_name], per_class=30
        )
    raise KeyError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")


__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "FPHA_CLASSES",
    "SBU_CLASSES",
    "SBU_FOLDS",
    "DatasetFolderError",
    "SkeletonDataset",
    "data_root",
    "load_dataset",
    "load_fpha",
    "load_sbu",
    "make_synthetic",
    "read_dataset_folder",
    "read_fpha_text",
    "read_sbu_file",
]
