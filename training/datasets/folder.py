"""The documented dataset folder (docs/datasets.md): a user's own recordings, classes and
skeleton, read into a SkeletonDataset with every problem refused before training.

    <folder>/dataset.json          name, classes, layout (built-in name or declared), frame
    <folder>/labels.csv            sequence,label,split (split: train/test or a fold number)
    <folder>/sequences/<stem>.npy  (T, P x J, 3) floats; or <stem>.csv, one frame a row

Each refusal is a DatasetFolderError naming the file and the key, the labels.csv row (1-based,
the header not counted) or the sequence's frame and joint.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mrmp.skeleton import Layout
from mrmp.skeleton.missing import missing_mask

from .dataset import SkeletonDataset
from .folder_info import INFO_FILE, DatasetFolderError, layout_of, read_info

LABELS_FILE = "labels.csv"
SEQUENCES_DIR = "sequences"
LABELS_HEADER = ("sequence", "label", "split")
# A train/test split becomes two folds, as FPHA's: hold out TEST_FOLD to evaluate.
TRAIN_FOLD, TEST_FOLD = 0, 1


class _Row(NamedTuple):
    """One data row of labels.csv: its 1-based number, the sequence stem, class index, split."""

    number: int
    stem: str
    label: int
    split: str


def read_dataset_folder(path: str | os.PathLike[str]) -> SkeletonDataset:
    """Read a dataset folder into (T, P x J, 3) float32 sequences in labels.csv's row order.

    Folds: a train/test split gives TRAIN_FOLD and TEST_FOLD; fold numbers are kept as they are
    (0..K-1, K >= 2). Raises DatasetFolderError for anything docs/datasets.md refuses.
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetFolderError(f"{root}: not a dataset folder (no such directory)")
    info_path, labels_path, seq_dir = root / INFO_FILE, root / LABELS_FILE, root / SEQUENCES_DIR
    for required in (info_path, labels_path):
        if not required.is_file():
            raise DatasetFolderError(f"{required}: missing (a dataset folder needs this file)")
    if not seq_dir.is_dir():
        raise DatasetFolderError(f"{seq_dir}: missing (a dataset folder needs this directory)")
    info = read_info(info_path)
    layout = layout_of(info, info_path)
    rows = _read_labels(labels_path, info.classes)
    folds = _folds_of(rows, labels_path)
    _check_every_class_trains(rows, folds, info.classes, labels_path)
    return SkeletonDataset(
        name=info.name,
        layout=layout,
        class_names=tuple(info.classes),
        sequences=[
            _read_sequence(_sequence_file(seq_dir, row, labels_path), layout) for row in rows
        ],
        labels=np.array([row.label for row in rows], dtype=np.int64),
        folds=folds,
        ids=[row.stem for row in rows],
    )


# ----------------------------------------------------------------------------- dataset.json


def _read_labels(path: Path, classes: list[str]) -> list[_Row]:
    index = {name: k for k, name in enumerate(classes)}
    rows: list[_Row] = []
    first_row: dict[str, int] = {}
    lines = _csv_rows(path)
    header = next(lines, None)
    if header is None or tuple(cell.strip() for cell in header[1]) != LABELS_HEADER:
        got = "nothing" if header is None else ",".join(header[1])
        raise DatasetFolderError(f"{path}: header must be {','.join(LABELS_HEADER)}, got {got}")
    for number, (_, cells) in enumerate(lines, 1):
        where = f"{path}: row {number}"
        if len(cells) != len(LABELS_HEADER):
            raise DatasetFolderError(
                f"{where}: {len(cells)} fields, expected 3 ({','.join(LABELS_HEADER)})"
            )
        stem, label, split = (cell.strip() for cell in cells)
        if not stem or stem in (".", "..") or any(c in stem for c in "/\\"):
            raise DatasetFolderError(
                f"{where}: sequence {stem!r} is not a file stem under {SEQUENCES_DIR}/"
            )
        if stem in first_row:
            raise DatasetFolderError(f"{where}: sequence {stem!r} repeats row {first_row[stem]}")
        if label not in index:
            raise DatasetFolderError(
                f"{where}: unknown class {label!r}; classes in {INFO_FILE}: {', '.join(classes)}"
            )
        if split not in ("train", "test") and not (split.isascii() and split.isdigit()):
            raise DatasetFolderError(
                f"{where}: split {split!r} is neither train/test nor a fold number (0, 1, ...)"
            )
        first_row[stem] = number
        rows.append(_Row(number, stem, index[label], split))
    if not rows:
        raise DatasetFolderError(f"{path}: no data rows after the header")
    return rows


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(1-based line number, cells) of each non-blank row of a CSV file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetFolderError(f"{path}: not UTF-8 text ({exc.reason})") from None
    reader = csv.reader(text.splitlines())
    for cells in reader:
        if any(cell.strip() for cell in cells):
            yield reader.line_num, cells


def _folds_of(rows: list[_Row], path: Path) -> np.ndarray:
    """Each row's fold; refuses mixed split kinds, no training rows and empty folds."""
    by_name = [row for row in rows if row.split in ("train", "test")]
    if by_name and len(by_name) != len(rows):
        numbered = next(row for row in rows if row.split not in ("train", "test"))
        raise DatasetFolderError(
            f"{path}: row {numbered.number}: split {numbered.split!r} is a fold number but row "
            f"{by_name[0].number} says {by_name[0].split!r}; use train/test or fold numbers, "
            "not both"
        )
    if by_name:
        for split, what in (("train", "no training rows"), ("test", "the test split has no rows")):
            if not any(row.split == split for row in rows):
                raise DatasetFolderError(f"{path}: {what} (split {split!r})")
        return np.array([TEST_FOLD if row.split == "test" else TRAIN_FOLD for row in rows])
    folds = np.array([int(row.split) for row in rows], dtype=np.int64)
    count = np.bincount(folds)
    if len(count) < 2:
        raise DatasetFolderError(
            f"{path}: every row is in fold 0, so holding it out leaves no training rows; "
            "cross-validation needs folds 0..K-1 with K >= 2"
        )
    empty = np.flatnonzero(count == 0)
    if empty.size:
        raise DatasetFolderError(
            f"{path}: fold {int(empty[0])} has no rows (folds are numbered 0..{len(count) - 1}, "
            "each needs at least one)"
        )
    return folds


def _check_every_class_trains(
    rows: list[_Row], folds: np.ndarray, classes: list[str], path: Path
) -> None:
    """Every class has a training sequence whichever fold is held out (train/test: the test
    fold only)."""
    labels = np.array([row.label for row in rows])
    train_test = rows[0].split in ("train", "test")
    for fold in [TEST_FOLD] if train_test else sorted(set(folds.tolist())):
        trained = set(labels[folds != fold].tolist())
        for k, name in enumerate(classes):
            if k not in trained:
                where = [str(row.number) for row in rows if row.label == k]
                found = f"its rows: {', '.join(where)}" if where else "it has no rows"
                held = "the test split" if train_test else f"fold {fold}"
                raise DatasetFolderError(
                    f"{path}: class {name!r} has no training sequence when {held} is held out "
                    f"({found})"
                )


# ----------------------------------------------------------------------------- sequences/


def _sequence_file(seq_dir: Path, row: _Row, labels_path: Path) -> Path:
    found = [p for p in (seq_dir / f"{row.stem}.npy", seq_dir / f"{row.stem}.csv") if p.is_file()]
    if not found:
        raise DatasetFolderError(
            f"{labels_path}: row {row.number}: sequence file {seq_dir / row.stem}.npy (or .csv) "
            "is missing"
        )
    if len(found) > 1:
        raise DatasetFolderError(
            f"{labels_path}: row {row.number}: both {found[0].name} and {found[1].name} exist; "
            "keep one"
        )
    return found[0]


def _read_sequence(path: Path, layout: Layout) -> np.ndarray:
    """(T, J, 3) float32 of one .npy or .csv sequence file, checked against the layout."""
    lines: list[int] | None = None  # a CSV's line number of each frame
    if path.suffix == ".npy":
        x = _read_npy(path, layout)
    else:
        x, lines = _read_csv_sequence(path, layout)
    if x.shape[0] == 0:
        raise DatasetFolderError(f"{path}: empty sequence (no frames)")
    with np.errstate(over="ignore"):
        x = x.astype(np.float32)
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        t, j, c = (int(v) for v in bad[0])
        line = "" if lines is None else f"line {lines[t]}, "
        raise DatasetFolderError(
            f"{path}: {line}frame {t}, joint {j} ({layout.joint_names[j]}): {'xyz'[c]} is "
            f"{x[t, j, c]} (NaN or beyond float32; write a missing joint as 0, 0, 0)"
        )
    if missing_mask(x).all():
        raise DatasetFolderError(
            f"{path}: no joint is observed in any frame (every joint is 0, 0, 0: a missing "
            "detection), so there is no skeleton to learn from"
        )
    return x


def _joints_text(layout: Layout) -> str:
    per = layout.num_joints // layout.persons
    return f"{layout.num_joints} joints ({layout.persons} person(s) x {per})"


def _read_npy(path: Path, layout: Layout) -> np.ndarray:
    try:
        # read_array, not np.load: np.load takes a file without the .npy magic for a pickle.
        with path.open("rb") as f:
            x = np.lib.format.read_array(f, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DatasetFolderError(f"{path}: not a readable .npy array ({exc})") from None
    if x.dtype.kind not in "fiu":
        raise DatasetFolderError(f"{path}: dtype {x.dtype} is not a real number type")
    if x.ndim != 3:
        raise DatasetFolderError(
            f"{path}: shape {x.shape}, expected (frames, {layout.num_joints}, 3): "
            f"{_joints_text(layout)} of x, y, z"
        )
    if x.shape[1] != layout.num_joints:
        raise DatasetFolderError(
            f"{path}: {x.shape[1]} joints per frame, the layout has {_joints_text(layout)}"
        )
    if x.shape[2] != 3:
        raise DatasetFolderError(
            f"{path}: {x.shape[2]} coordinates per joint, expected 3 (x, y, z)"
        )
    return x


def _read_csv_sequence(path: Path, layout: Layout) -> tuple[np.ndarray, list[int]]:
    """(frames, their line numbers): one frame a row of x, y, z per joint; a first row that is
    not all numbers is a header."""
    width = 3 * layout.num_joints
    rows = list(_csv_rows(path))
    if rows and not all(is_number(cell) for cell in rows[0][1]):
        rows = rows[1:]
    frames: list[list[float]] = []
    for line, cells in rows:
        bad = next((cell for cell in cells if not is_number(cell)), None)
        if bad is not None:
            raise DatasetFolderError(f"{path}: line {line}: {bad!r} is not a number")
        if len(cells) != width:
            raise DatasetFolderError(
                f"{path}: line {line}: {len(cells)} values, expected {width} (x, y, z of each "
                f"of {_joints_text(layout)})"
            )
        frames.append([float(cell) for cell in cells])
    x = np.array(frames, dtype=np.float64).reshape(len(frames), layout.num_joints, 3)
    return x, [line for line, _ in rows]


def is_number(cell: str) -> bool:
    """Whether a CSV cell reads as a float (as float() reads it: "nan" and "inf" too)."""
    try:
        float(cell)
    except ValueError:
        return False
    return True
