"""Write a SkeletonDataset as the documented dataset folder (docs/datasets.md), so that
read_dataset_folder reads it back equal: the sequences bitwise, labels, folds, classes, the
layout's joints, bones, persons and frame, and the ids as file stems (sequence_stem)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Literal

import numpy as np

from mrmp.skeleton import Layout
from mrmp.skeleton.layouts import LAYOUTS

from .dataset import SkeletonDataset
from .folder import LABELS_FILE, LABELS_HEADER, SEQUENCES_DIR, TEST_FOLD, TRAIN_FOLD
from .folder_info import INFO_FILE, DatasetInfo, layout_of

Split = Literal["folds", "train-test"]
SPLITS: tuple[Split, ...] = ("folds", "train-test")


def write_dataset_folder(
    dataset: SkeletonDataset,
    folder: str | os.PathLike[str],
    *,
    declare_layout: bool = False,
    split: Split = "folds",
) -> Path:
    """Write `dataset` into `folder` (created; it must not exist or be empty) and return it.

    dataset.json names a built-in layout when the dataset's layout is one (its frame written
    only when it differs from the built-in's); with `declare_layout`, or a layout that is not
    built in, it declares one person's joint names and bones, the persons, the root and the
    frame. labels.csv gives each sequence its fold number (`split="folds"`), or `train`/`test`
    (`split="train-test"`, for folds that are TRAIN_FOLD and TEST_FOLD); sequences/<stem>.npy
    holds each (T, J, 3) array as it is.

    Raises FileExistsError for a non-empty folder (or a file there), ValueError for what the
    folder form cannot hold: a sequence not (frames, joints, 3), an id that makes no stem or
    the stem of another id, a class name that labels.csv would not give back, folds that are
    not a train/test split under `split="train-test"`, or a multi-person layout other than the
    declared form's (each joint linked to the same joint of the next person, as SBU's).
    """
    root = Path(folder)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(
            f"{root}: not empty; a dataset folder is written into a new or empty directory"
        )
    info = _info(dataset, declare_layout)
    stems = _stems(dataset.ids)
    for name in dataset.class_names:
        if not name or name != name.strip():
            raise ValueError(
                f"class {name!r}: labels.csv strips its cells, so a class name must be "
                "non-empty without leading or trailing spaces"
            )
    splits = _split_cells(dataset.folds, split)
    joints = dataset.layout.num_joints
    for seq_id, x in zip(dataset.ids, dataset.sequences, strict=True):
        if x.ndim != 3 or x.shape[1:] != (joints, 3):
            raise ValueError(
                f"sequence {seq_id!r}: shape {x.shape}, expected (frames, {joints}, 3) for "
                f"layout {dataset.layout.name!r}"
            )
    sequences = root / SEQUENCES_DIR
    sequences.mkdir(parents=True, exist_ok=True)
    (root / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    with (root / LABELS_FILE).open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(LABELS_HEADER)
        for stem, label, cell in zip(stems, dataset.labels.tolist(), splits, strict=True):
            writer.writerow((stem, dataset.class_names[label], cell))
    for stem, x in zip(stems, dataset.sequences, strict=True):
        np.save(sequences / f"{stem}.npy", x, allow_pickle=False)
    return root


def sequence_stem(seq_id: str) -> str:
    """The file stem an id is written under: the id with each `/` and `\\` made `_` (SBU's
    "s01s02/01/001" -> "s01s02_01_001"); the folder reads the stem back as the id. ValueError
    for an id that makes no file stem."""
    stem = seq_id.replace("/", "_").replace("\\", "_")
    if stem in ("", ".", "..") or stem != stem.strip():
        raise ValueError(f"sequence id {seq_id!r} makes no file stem (got {stem!r})")
    return stem


def declared_layout(layout: Layout) -> dict[str, object]:
    """The declared form of `layout` (docs/datasets.md): one person's joint names (the person
    letter's "A_" removed when there are two or more persons) and bones, the persons, and the
    root when the layout has one."""
    per = layout.num_joints // layout.persons
    names = layout.joint_names[:per]
    if layout.persons > 1:
        names = tuple(name.removeprefix("A_") for name in names)
    out: dict[str, object] = {
        "joint_names": list(names),
        "bones": [[a, b] for a, b in layout.bones if a < per and b < per],
        "persons": layout.persons,
    }
    if layout.root is not None:
        out["root"] = layout.root
    return out


def _info(dataset: SkeletonDataset, declare: bool) -> dict[str, object]:
    """dataset.json's content; a declared layout is checked to read back as dataset.layout."""
    layout = dataset.layout
    info: dict[str, object] = {"name": dataset.name, "classes": list(dataset.class_names)}
    builtin = LAYOUTS.get(layout.name)
    if not declare and builtin is not None and _same_skeleton(builtin, layout):
        info["layout"] = layout.name
        if layout.frame != builtin.frame:
            info["frame"] = layout.frame.model_dump()
        return info
    info["layout"] = declared_layout(layout)
    info["frame"] = layout.frame.model_dump()
    if not _same_skeleton(layout_of(DatasetInfo.model_validate(info), Path(INFO_FILE)), layout):
        raise ValueError(
            f"layout {layout.name!r} ({layout.persons} persons) has no declared form in a "
            "dataset folder: with two or more persons the folder links each joint to the same "
            "joint of the next person and names the joints A_<name>, B_<name>, ... "
            "(docs/datasets.md)"
        )
    return info


def _same_skeleton(a: Layout, b: Layout) -> bool:
    """The same joints, bones, persons and root (the name and the frame aside)."""
    return (a.joint_names, a.bones, a.persons, a.root) == (
        b.joint_names,
        b.bones,
        b.persons,
        b.root,
    )


def _stems(ids: list[str]) -> list[str]:
    stems = [sequence_stem(seq_id) for seq_id in ids]
    first: dict[str, str] = {}
    for seq_id, stem in zip(ids, stems, strict=True):
        if stem in first:
            raise ValueError(
                f"sequence ids {first[stem]!r} and {seq_id!r} make the same file stem {stem!r}"
            )
        first[stem] = seq_id
    return stems


def _split_cells(folds: np.ndarray, split: Split) -> list[str]:
    """labels.csv's split cell of each sequence."""
    if split == "folds":
        return [str(fold) for fold in folds.tolist()]
    if split != "train-test":
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    kinds = set(folds.tolist())
    if kinds != {TRAIN_FOLD, TEST_FOLD}:
        raise ValueError(
            f"split 'train-test' needs folds {TRAIN_FOLD} (train) and {TEST_FOLD} (test), "
            f"got folds {sorted(kinds)}"
        )
    return ["test" if fold == TEST_FOLD else "train" for fold in folds.tolist()]
