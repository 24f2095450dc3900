"""SBU Kinect Interaction (clean) skeleton loader; format in shared/data/.../SOURCE.md."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mrmp.skeleton.layouts import SBU_LAYOUT

from .dataset import SkeletonDataset

SBU_DIR = "sbu_kinect_interaction"

# Class folders 01..08 in order.
SBU_CLASSES: tuple[str, ...] = (
    "approaching",
    "departing",
    "kicking",
    "punching",
    "pushing",
    "hugging",
    "shaking_hands",
    "exchanging_objects",
)

# The official 5-fold table (the dataset's README, quoted in SOURCE.md); index = zero-based fold.
SBU_FOLDS: tuple[tuple[str, ...], ...] = (
    ("s01s02", "s03s04", "s05s02", "s06s04"),
    ("s02s03", "s02s07", "s03s05", "s05s03"),
    ("s01s03", "s01s07", "s07s01", "s07s03"),
    ("s02s01", "s02s06", "s03s02", "s03s06"),
    ("s04s02", "s04s03", "s04s06", "s06s02", "s06s03"),
)

_SET_TO_FOLD = {s: k for k, sets in enumerate(SBU_FOLDS) for s in sets}
_COLUMNS = 1 + SBU_LAYOUT.num_joints * 3  # frame number + 2 x 15 x xyz = 91


def camera_frame(normalized: np.ndarray) -> np.ndarray:
    """The files' normalized (..., 3) x, y, z in the Kinect/OpenNI camera frame, millimetres
    (SOURCE.md: X = 1280 - 2560 x, Y = 960 - 1920 y, Z = z * 10000 / 7.8125), float64."""
    x = np.asarray(normalized, dtype=np.float64)
    return np.stack(
        [1280.0 - 2560.0 * x[..., 0], 960.0 - 1920.0 * x[..., 1], x[..., 2] * (10000.0 / 7.8125)],
        axis=-1,
    )


def read_sbu_file(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one `skeleton_pos.txt` into (T, 30, 3) float32 millimetres in the sensor's camera
    frame (`camera_frame`; person A joints 0..14, B 15..29).

    The leading frame number (original recording numbering, arbitrary start) must be contiguous.
    """
    path = Path(path)
    rows = [ln.split(",") for ln in path.read_text(encoding="ascii").splitlines() if ln.strip()]
    if not rows:
        raise ValueError(f"{path}: empty SBU skeleton file")
    bad = next((i for i, r in enumerate(rows) if len(r) != _COLUMNS), None)
    if bad is not None:
        raise ValueError(f"{path}: row {bad + 1} has {len(rows[bad])} columns, expected {_COLUMNS}")
    try:
        table = np.array(rows, dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{path}: non-numeric value ({exc})") from None
    frames = table[:, 0]
    if not np.all(np.diff(frames) == 1):
        raise ValueError(
            f"{path}: frame numbers are not contiguous "
            f"(first {frames[0]:g}, last {frames[-1]:g}, {len(frames)} rows)"
        )
    normalized = table[:, 1:].reshape(len(table), SBU_LAYOUT.num_joints, 3)
    return camera_frame(normalized).astype(np.float32)


def load_sbu(root: str | os.PathLike[str]) -> SkeletonDataset:
    """Load all sequences under `<root>/sbu_kinect_interaction/<set>/<class>/<seq>/`.

    Folds are the official ones, zero-based; labels are class folder number - 1.
    """
    base = Path(root) / SBU_DIR
    if not base.is_dir():
        raise FileNotFoundError(
            f"SBU data folder not found: {base} (set MRMP_DATA_DIR or pass the data root)"
        )
    sequences: list[np.ndarray] = []
    labels: list[int] = []
    folds: list[int] = []
    ids: list[str] = []
    for path in sorted(base.glob("*/*/*/skeleton_pos.txt")):
        set_name, class_dir, seq = path.relative_to(base).parts[:3]
        if set_name not in _SET_TO_FOLD:
            raise ValueError(f"{path}: set {set_name!r} is not in the official fold table")
        if not (class_dir.isdigit() and 1 <= int(class_dir) <= len(SBU_CLASSES)):
            raise ValueError(f"{path}: unexpected class folder {class_dir!r}")
        sequences.append(read_sbu_file(path))
        labels.append(int(class_dir) - 1)
        folds.append(_SET_TO_FOLD[set_name])
        ids.append(f"{set_name}/{class_dir}/{seq}")
    if not sequences:
        raise FileNotFoundError(f"no */*/*/skeleton_pos.txt files under {base}")
    return SkeletonDataset(
        name="sbu",
        layout=SBU_LAYOUT,
        class_names=SBU_CLASSES,
        sequences=sequences,
        labels=np.asarray(labels, dtype=np.int64),
        folds=np.asarray(folds, dtype=np.int64),
        ids=ids,
    )
