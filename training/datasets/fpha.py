"""First-Person Hand Action (FPHA) loader; reads members straight from the annotation zip."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from mrmp.skeleton.layouts import FPHA_LAYOUT

from .dataset import SkeletonDataset

FPHA_DIR = "fpha"
FPHA_ZIP = "Hand_pose_annotation_v1.zip"
FPHA_SPLIT = "data_split_action_recognition.txt"
_MEMBER = "Hand_pose_annotation_v1/{}/skeleton.txt"
_SECTIONS = {"Training": 0, "Test": 1}  # split file section -> fold
_COLUMNS = 1 + FPHA_LAYOUT.num_joints * 3  # frame index + 21 x xyz = 64

# Action names by label id, as in the official split file.
FPHA_CLASSES: tuple[str, ...] = (
    "open_juice_bottle",
    "close_juice_bottle",
    "pour_juice_bottle",
    "open_peanut_butter",
    "close_peanut_butter",
    "prick",
    "sprinkle",
    "scoop_spoon",
    "put_sugar",
    "stir",
    "open_milk",
    "close_milk",
    "pour_milk",
    "drink_mug",
    "put_tea_bag",
    "put_salt",
    "open_liquid_soap",
    "close_liquid_soap",
    "pour_liquid_soap",
    "wash_sponge",
    "flip_sponge",
    "scratch_sponge",
    "squeeze_sponge",
    "open_soda_can",
    "use_flash",
    "write",
    "tear_paper",
    "squeeze_paper",
    "open_letter",
    "take_letter_from_enveloppe",
    "read_letter",
    "flip_pages",
    "use_calculator",
    "light_candle",
    "charge_cell_phone",
    "unfold_glasses",
    "clean_glasses",
    "open_wallet",
    "give_coin",
    "receive_coin",
    "give_card",
    "pour_wine",
    "toast_wine",
    "handshake",
    "high_five",
)


def read_fpha_text(text: str) -> np.ndarray:
    """Parse one `skeleton.txt` into (T, 21, 3) float32 (joints in file order, millimetres).

    Whitespace splitting, not '\\n' splitting: one file in the archive uses CRLF.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ValueError("FPHA skeleton text has no frames")
    tokens = text.split()
    if len(tokens) != _COLUMNS * len(lines):
        bad = next(i for i, ln in enumerate(lines) if len(ln.split()) != _COLUMNS)
        raise ValueError(
            f"FPHA row {bad + 1} has {len(lines[bad].split())} values, expected {_COLUMNS}"
        )
    try:
        table = np.array(tokens, dtype=np.float64).reshape(len(lines), _COLUMNS)
    except ValueError as exc:
        raise ValueError(f"FPHA skeleton text has a non-numeric value ({exc})") from None
    if not np.all(np.diff(table[:, 0]) == 1):
        raise ValueError("FPHA frame indices are not contiguous")
    return table[:, 1:].reshape(len(lines), FPHA_LAYOUT.num_joints, 3).astype(np.float32)


def _read_split(path: Path) -> list[tuple[str, int, int]]:
    """(sequence id, label, fold) for every line of the split file, checking section counts."""
    entries: list[tuple[str, int, int]] = []
    fold: int | None = None
    expected: dict[int, int] = {}
    for lineno, line in enumerate(path.read_text(encoding="ascii").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise ValueError(f"{path}:{lineno}: expected 2 fields, got {line!r}")
        if parts[0] in _SECTIONS:
            fold = _SECTIONS[parts[0]]
            expected[fold] = int(parts[1])
            continue
        if fold is None:
            raise ValueError(f"{path}:{lineno}: sequence before a Training/Test header")
        entries.append((parts[0], int(parts[1]), fold))
    for f, n in expected.items():
        got = sum(1 for e in entries if e[2] == f)
        if got != n:
            raise ValueError(f"{path}: section fold {f} announces {n} sequences, lists {got}")
    return entries


def load_fpha(root: str | os.PathLike[str]) -> SkeletonDataset:
    """Load the official 1:1 action split (fold 0 = Training, 1 = Test) from `<root>/fpha/`.

    Only sequences named in the split file are read, so the archive's 3 empty, unused files are
    skipped; a requested member that is empty raises ValueError.
    """
    base = Path(root) / FPHA_DIR
    zip_path, split_path = base / FPHA_ZIP, base / FPHA_SPLIT
    for p in (zip_path, split_path):
        if not p.is_file():
            raise FileNotFoundError(
                f"FPHA file not found: {p} (set MRMP_DATA_DIR or pass the data root)"
            )
    entries = _read_split(split_path)
    for seq_id, label, _ in entries:
        action = seq_id.split("/")[1] if seq_id.count("/") == 2 else None
        if not 0 <= label < len(FPHA_CLASSES) or FPHA_CLASSES[label] != action:
            raise ValueError(f"{split_path}: {seq_id} has label {label}, not its action's id")

    sequences: list[np.ndarray] = []
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
        for seq_id, _, _ in entries:
            member = _MEMBER.format(seq_id)
            if member not in names:
                raise FileNotFoundError(f"{zip_path}: member {member} is missing")
            text = zf.read(member).decode("ascii")
            if not text.strip():
                raise ValueError(f"{zip_path}: requested member {member} is empty")
            try:
                sequences.append(read_fpha_text(text))
            except ValueError as exc:
                raise ValueError(f"{zip_path}: {member}: {exc}") from None
    return SkeletonDataset(
        name="fpha",
        layout=FPHA_LAYOUT,
        class_names=FPHA_CLASSES,
        sequences=sequences,
        labels=np.asarray([e[1] for e in entries], dtype=np.int64),
        folds=np.asarray([e[2] for e in entries], dtype=np.int64),
        ids=[e[0] for e in entries],
    )
