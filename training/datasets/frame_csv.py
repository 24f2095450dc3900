"""A per-frame CSV, the form pose-estimator exports take, read into a SkeletonDataset
(docs/datasets.md, "Converting"): one row per frame of a sequence, with its label, an optional
split, and x, y, z of each joint of a built-in layout (x, y only with `planar`).

    sequence,frame,label[,split],<joint>_x,<joint>_y,<joint>_z,...   (or x0,y0,z0,x1,...)

Every refusal is a ValueError naming the file and its 1-based line.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mrmp.skeleton import Layout

from .dataset import SkeletonDataset
from .folder import TEST_FOLD, TRAIN_FOLD, is_number
from .folder_writer import Split

KEYS = ("sequence", "frame", "label")
# The most frames a sequence may span (an hour at 30 fps would be 108,000): a larger span is a
# timestamp taken for a frame number, which would otherwise fill a huge array with zeros.
MAX_SPAN = 100_000
SPLIT_KEY = "split"


@dataclass
class _Sequence:
    line: int  # where it is first seen
    label: str
    split: str | None
    frames: dict[int, tuple[int, np.ndarray]] = field(default_factory=dict)  # frame: (line, xyz)


def read_frame_csv(
    path: str | os.PathLike[str],
    layout: Layout,
    *,
    name: str,
    planar: bool = False,
    folds: int = 5,
) -> tuple[SkeletonDataset, Split]:
    """The sequences of a per-frame CSV, and the split kind labels.csv should be written with.

    Each sequence is (T, J, 3) float32 from its first to its last frame number; a frame between
    them without a row, and a joint whose cells are all empty, is all zeros (a missing
    detection, mrmp/skeleton/missing.py). With `planar` (a 2D tool) the file has no z columns
    and z is 0: a joint is then missing exactly when x = y = 0, which is how 2D tools write an
    undetected keypoint. Classes: the labels in order of first appearance. Folds: the split
    column's (train/test: "train-test"; fold numbers: "folds"), or without that column the
    k-th sequence of each class in fold k mod `folds` ("folds").

    Raises ValueError naming the file and line: a header that does not give each of the
    layout's joints one column per axis, a row of the wrong width, a frame number that is not
    a non-negative integer or repeats one of its sequence, a label or split that differs
    between the rows of a sequence, train/test mixed with fold numbers, a coordinate that is
    not a finite float32 number, a joint with some cells empty, or a sequence spanning more
    than MAX_SPAN frame numbers.
    """
    path = Path(path)
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason})") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None:
        raise ValueError(f"{path}: empty (a header line is expected)")
    columns, coords = _columns(path, header, layout, planar)
    sequences: dict[str, _Sequence] = {}
    for cells in reader:
        if any(cell.strip() for cell in cells):
            _add_row(path, reader.line_num, cells, header, columns, coords, sequences)
    if not sequences:
        raise ValueError(f"{path}: no rows after the header")
    return _dataset(path, sequences, layout, name, folds)


def _columns(
    path: Path, header: list[str], layout: Layout, planar: bool
) -> tuple[dict[str, int], np.ndarray]:
    """(column of each key, the (J, axes) column of each joint's coordinates) from the header."""
    axes = "xy" if planar else "xyz"
    names = {
        f"{joint}_{axis}": (j, a)
        for j, joint in enumerate(layout.joint_names)
        for a, axis in enumerate(axes)
    }
    names.update(
        {f"{axis}{j}": (j, a) for j in range(layout.num_joints) for a, axis in enumerate(axes)}
    )
    where = f"{path}: line 1"
    columns: dict[str, int] = {}
    coords = np.full((layout.num_joints, len(axes)), -1)
    for c, raw in enumerate(header):
        cell = raw.strip()
        if cell in (*KEYS, SPLIT_KEY):
            if cell in columns:
                raise ValueError(f"{where}: column {cell!r} appears twice")
            columns[cell] = c
        elif cell in names:
            j, a = names[cell]
            if coords[j, a] >= 0:
                raise ValueError(
                    f"{where}: column {cell!r} repeats column {coords[j, a] + 1} "
                    f"({layout.joint_names[j]} {axes[a]})"
                )
            coords[j, a] = c
        else:
            z = " (a z column: the file is not planar)" if planar and cell.endswith("z") else ""
            raise ValueError(
                f"{where}: column {cell!r} is neither {', '.join(KEYS)}, {SPLIT_KEY} nor a "
                f"coordinate of layout {layout.name!r} (<joint>_{axes[0]} or {axes[0]}<index>)" + z
            )
    for key in KEYS:
        if key not in columns:
            raise ValueError(f"{where}: no column {key!r}")
    absent = np.argwhere(coords < 0)
    if absent.size:
        j, a = (int(v) for v in absent[0])
        hint = " (a 2D tool's file: read it as planar)" if axes[a] == "z" else ""
        raise ValueError(
            f"{where}: no column for joint {layout.joint_names[j]!r} {axes[a]} "
            f"({layout.joint_names[j]}_{axes[a]} or {axes[a]}{j}){hint}"
        )
    return columns, coords


def _add_row(
    path: Path,
    line: int,
    cells: list[str],
    header: list[str],
    columns: dict[str, int],
    coords: np.ndarray,
    sequences: dict[str, _Sequence],
) -> None:
    where = f"{path}: line {line}"
    width = len(columns) + coords.size
    if len(cells) != width:
        raise ValueError(f"{where}: {len(cells)} fields, expected {width} (as the header)")
    stem, frame, label = (cells[columns[key]].strip() for key in KEYS)
    split = cells[columns[SPLIT_KEY]].strip() if SPLIT_KEY in columns else None
    for key, value in (("sequence", stem), ("label", label), (SPLIT_KEY, split)):
        if value == "":
            raise ValueError(f"{where}: empty {key}")
    if not (frame.isascii() and frame.isdigit()):
        raise ValueError(f"{where}: frame {frame!r} is not a frame number (0, 1, ...)")
    if (
        split is not None
        and split not in ("train", "test")
        and not (split.isascii() and split.isdigit())
    ):
        raise ValueError(f"{where}: split {split!r} is neither train/test nor a fold number")
    seq = sequences.setdefault(stem, _Sequence(line, label, split))
    for key, value, first in (("label", label, seq.label), (SPLIT_KEY, split, seq.split)):
        if value != first:
            raise ValueError(
                f"{where}: sequence {stem!r} has {key} {value!r}, but line {seq.line} says "
                f"{first!r}"
            )
    if int(frame) in seq.frames:
        raise ValueError(
            f"{where}: sequence {stem!r} frame {frame} repeats line {seq.frames[int(frame)][0]}"
        )
    seq.frames[int(frame)] = (line, _coordinates(where, cells, coords, header))


def _coordinates(where: str, cells: list[str], coords: np.ndarray, header: list[str]) -> np.ndarray:
    """(J, 3) float32 of one row; a joint with every cell empty is (0, 0, 0)."""
    raw = np.array([[cells[c].strip() for c in row] for row in coords], dtype=object)
    empty = raw == ""
    partial = np.argwhere(empty & ~empty.all(axis=1, keepdims=True))
    if partial.size:
        j, a = (int(v) for v in partial[0])
        raise ValueError(
            f"{where}: column {header[coords[j, a]].strip()!r} is empty, but joint {j}'s other "
            "cells are not (leave all of a joint's cells empty, or write 0s, for a joint not "
            "detected)"
        )
    raw[empty] = "0"
    try:
        values = raw.astype(np.float64)
    except ValueError:
        j, a = next((j, a) for (j, a), cell in np.ndenumerate(raw) if not is_number(cell))
        raise ValueError(
            f"{where}: column {header[coords[j, a]].strip()!r}: {raw[j, a]!r} is not a number"
        ) from None
    with np.errstate(over="ignore"):
        xyz = np.zeros((len(coords), 3), dtype=np.float32)
        xyz[:, : coords.shape[1]] = values
    bad = np.argwhere(~np.isfinite(xyz))
    if bad.size:
        j, a = (int(v) for v in bad[0])
        raise ValueError(
            f"{where}: column {header[coords[j, a]].strip()!r} is {raw[j, a]} (NaN, infinite or "
            "beyond float32; write a joint not detected as 0s or empty cells)"
        )
    return xyz


def _dataset(
    path: Path, sequences: dict[str, _Sequence], layout: Layout, name: str, folds: int
) -> tuple[SkeletonDataset, Split]:
    classes = list(dict.fromkeys(seq.label for seq in sequences.values()))
    splits = [seq.split for seq in sequences.values()]
    kind: Split = "folds"
    if splits[0] is None:
        rank: dict[str, int] = {}
        fold_of = []
        for seq in sequences.values():
            fold_of.append(rank.get(seq.label, 0) % folds)
            rank[seq.label] = rank.get(seq.label, 0) + 1
    elif all(split in ("train", "test") for split in splits):
        kind = "train-test"
        fold_of = [TEST_FOLD if split == "test" else TRAIN_FOLD for split in splits]
    else:
        named = next((s for s in sequences.values() if s.split in ("train", "test")), None)
        if named is not None:
            number = next(s for s in sequences.values() if s.split not in ("train", "test"))
            raise ValueError(
                f"{path}: line {number.line}: split {number.split!r} is a fold number but line "
                f"{named.line} says {named.split!r}; use train/test or fold numbers, not both"
            )
        fold_of = [int(split) for split in splits if split is not None]
    sequence_arrays = []
    for stem, seq in sequences.items():
        first, last = min(seq.frames), max(seq.frames)
        if last - first + 1 > MAX_SPAN:
            raise ValueError(
                f"{path}: line {seq.frames[last][0]}: sequence {stem!r} spans frames {first} to "
                f"{last}, more than {MAX_SPAN:,}: frame must count frames (0, 1, ...), not time"
            )
        x = np.zeros((last - first + 1, layout.num_joints, 3), dtype=np.float32)
        for t, (_, xyz) in seq.frames.items():
            x[t - first] = xyz
        sequence_arrays.append(x)
    dataset = SkeletonDataset(
        name=name,
        layout=layout,
        class_names=tuple(classes),
        sequences=sequence_arrays,
        labels=np.array([classes.index(seq.label) for seq in sequences.values()]),
        folds=np.array(fold_of),
        ids=list(sequences),
    )
    return dataset, kind
