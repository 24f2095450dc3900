"""Skeleton data: layouts, dataset loaders (SBU, FPHA, synthetic) and the node descriptor."""

from __future__ import annotations

import os

from .dataset import DATA_DIR_ENV, SkeletonDataset, data_root
from .descriptor import DescriptorConfig, SkeletonError, describe, describe_batch
from .fpha import FPHA_CLASSES, load_fpha, read_fpha_text
from .layouts import FPHA_LAYOUT, LAYOUTS, SBU_LAYOUT, Layout, get_layout
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
    "FPHA_LAYOUT",
    "LAYOUTS",
    "SBU_CLASSES",
    "SBU_FOLDS",
    "SBU_LAYOUT",
    "DescriptorConfig",
    "Layout",
    "SkeletonDataset",
    "SkeletonError",
    "data_root",
    "describe",
    "describe_batch",
    "get_layout",
    "load_dataset",
    "load_fpha",
    "load_sbu",
    "make_synthetic",
    "read_fpha_text",
    "read_sbu_file",
]
