"""Converters to the dataset folder (training/datasets/ntu.py, frame_csv.py, lab/convert.py): NTU
RGB+D .skeleton files written from the format's specification and per-frame CSVs land each value
in its frame, person and joint, malformed files are refused naming the file and line, and what
`mrmp convert` writes reads back equal."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lab.convert import convert_app
from mrmp.skeleton import SBU_LAYOUT, get_layout
from tests.conftest import needs_data
from training.datasets import SkeletonDataset, data_root, load_fpha, load_sbu, read_dataset_folder
from training.datasets.folder import TEST_FOLD, TRAIN_FOLD
from training.datasets.folder_writer import sequence_stem
from training.datasets.frame_csv import read_frame_csv
from training.datasets.ntu import (
    NTU_CLASSES,
    NTU_LAYOUT,
    NTU_TRAINING_SUBJECTS,
    load_ntu,
    parse_ntu_name,
    read_ntu_skeleton,
)

runner = CliRunner()

Body = tuple[str, np.ndarray]  # (bodyID, (25, 3) x, y, z)


def _skeleton_text(frames: list[list[Body]], newline: str = "\n") -> str:
    """A .skeleton file as read_skeleton_file.m reads it: the frame count; per frame the body
    count; per body 10 values, the joint count, and 12 values per joint."""
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body_id, joints in bodies:
            lines.append(f"{body_id} 0 1 2 1 2 0 0.0612 -0.2271 2")
            lines.append(str(len(joints)))
            lines += [
                f"{x!r} {y!r} {z!r} 270.4 211.8 1024.5 538.2 -0.24 0.04 0.96 -0.13 2"
                for x, y, z in joints.tolist()
            ]
    return newline.join(lines) + newline


def _joints(seed: int, spread: float) -> np.ndarray:
    """(25, 3) float32 positions about 3 m from the sensor, `spread` metres apart."""
    rng = np.random.default_rng(seed)
    return (np.array([0.1, 0.2, 3.0]) + spread * rng.standard_normal((25, 3))).astype(np.float32)


# Three frames: a still body seen first, a moving one, and a near-still third one in frame 2.
STILL, MOVING, THIRD = "72057594037931101", "72057594037931102", "72057594037931103"
_STILL = [_joints(0, 0.3) for _ in range(3)]
_MOVING = [_joints(t + 1, 0.3) + 0.5 * t for t in range(3)]
FRAMES: list[list[Body]] = [
    [(STILL, _STILL[0]), (MOVING, _MOVING[0])],
    [(MOVING, _MOVING[1])],  # frame 1: the still body not tracked
    [(STILL, _STILL[2]), (THIRD, _STILL[1] + 1e-3), (MOVING, _MOVING[2])],
]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_an_ntu_file_lands_each_value_in_its_frame_person_and_joint(tmp_path: Path, newline: str):
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_text(_skeleton_text(FRAMES, newline), newline="")
    x = read_ntu_skeleton(path)
    assert x.shape == (3, 50, 3) and x.dtype == np.float32
    for t in range(3):  # person A: the most moving body, though listed second
        np.testing.assert_array_equal(x[t, :25], _MOVING[t])
    np.testing.assert_array_equal(x[0, 25:], _STILL[0])  # person B: the next most moving
    np.testing.assert_array_equal(x[1, 25:], 0.0)  # not tracked: a missing detection
    np.testing.assert_array_equal(x[2, 25:], _STILL[2])  # the third body is left out


def test_one_body_leaves_person_b_missing(tmp_path: Path):
    path = tmp_path / "a.skeleton"
    path.write_text(_skeleton_text([[(STILL, _STILL[0])], []]))
    x = read_ntu_skeleton(path)
    np.testing.assert_array_equal(x[0, :25], _STILL[0])
    np.testing.assert_array_equal(x[0, 25:], 0.0)
    np.testing.assert_array_equal(x[1], 0.0)  # a frame with no body


def _lines_of_valid_file() -> list[str]:
    return _skeleton_text([[(STILL, _STILL[0])]]).splitlines()


def _edited(line: int, text: str | None) -> list[str]:
    """The one-frame, one-body file with 1-based `line` replaced (None: cut from there)."""
    lines = _lines_of_valid_file()
    return lines[: line - 1] if text is None else [*lines[: line - 1], text, *lines[line:]]


NTU_REFUSALS: dict[str, tuple[list[str], str]] = {
    "frame count not a count": (_edited(1, "one"), r"line 1: the frame count 'one' is not a count"),
    "a body line of 9 values": (
        _edited(3, "72057594037931101 0 1 2 1 2 0 0.06 -0.22"),
        r"line 3: 9 values, expected 10 \(a body's 10 values\)",
    ),
    "20 joints": (_edited(4, "20"), r"line 4: 20 joints, expected 25 \(Kinect v2\)"),
    "a joint of 11 values": (
        _edited(9, "0.1 0.2 3.0 270.4 211.8 1024.5 538.2 -0.24 0.04 0.96 -0.13"),
        r"line 9: 11 values, expected 12 \(a joint's 12 values\)",
    ),
    "a value not a number": (
        _edited(7, "0.1 abc 3.0 270.4 211.8 1024.5 538.2 -0.24 0.04 0.96 -0.13 2"),
        r"line 7: 'abc' is not a number",
    ),
    "a NaN coordinate": (
        _edited(6, "0.1 nan 3.0 270.4 211.8 1024.5 538.2 -0.24 0.04 0.96 -0.13 2"),
        r"line 6: x, y, z not finite",
    ),
    "a truncated file": (_edited(20, None), r"line 20: the file ends where a joint's 12 values"),
    "more frames than announced": (
        [*_lines_of_valid_file(), "0"],
        r"line 30: more lines than the 1 frames announced",
    ),
    "a body twice in a frame": (
        ["1", "2", *_lines_of_valid_file()[2:], *_lines_of_valid_file()[2:]],
        r"line 30: body 72057594037931101 repeats line 3 in frame 0",
    ),
}


@pytest.mark.parametrize("case", list(NTU_REFUSALS))
def test_a_malformed_ntu_file_is_refused_naming_the_file_and_line(tmp_path: Path, case: str):
    lines, message = NTU_REFUSALS[case]
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": " + message):
        read_ntu_skeleton(path)


def test_ntu_names_and_the_published_training_subjects():
    assert parse_ntu_name("S017C003P020R002A060") == (17, 3, 20, 2, 60)
    assert NTU_CLASSES[0] == "drink water" and NTU_CLASSES[59] == "walking apart from each other"
    assert len(NTU_CLASSES) == 120 and len(set(NTU_CLASSES)) == 120
    assert len([s for s in NTU_TRAINING_SUBJECTS if s <= 40]) == 20  # NTU RGB+D 60's
    assert len(NTU_TRAINING_SUBJECTS) == 53  # NTU RGB+D 120's
    for bad in ("S001C001P001R001A121", "S1C1P1R1A1", "S001C001P001R001A001x"):
        with pytest.raises(ValueError, match=r"NTU RGB\+D name|outside 1\.\.120"):
            parse_ntu_name(bad)


# Performers 1 and 2 train cross-subject, 3 tests; cameras 2 and 3 train cross-view.
NTU_FILES = {
    "S001C001P001R001A023": [[(STILL, _STILL[0])], [(STILL, _STILL[1])]],
    "S001C002P003R001A023": [[(MOVING, _MOVING[0]), (STILL, _STILL[0])]],
    "S002C003P002R002A001": [[(MOVING, _MOVING[1])]],
    "S002C001P003R002A001": [[(STILL, _STILL[2])]],
    "S002C001P001R001A001": [[], []],  # no body: left out
}


def _ntu_folder(folder: Path) -> Path:
    folder.mkdir()
    for stem, frames in NTU_FILES.items():
        (folder / f"{stem}.skeleton").write_text(_skeleton_text(frames))
    return folder


def test_ntu_files_load_with_the_benchmarks_folds(tmp_path: Path):
    source = _ntu_folder(tmp_path / "ntu")
    ds, skipped = load_ntu(source, "cross-subject")
    assert skipped == ["S002C001P001R001A001"]
    assert ds.ids == sorted(set(NTU_FILES) - set(skipped)) and ds.layout == NTU_LAYOUT
    assert ds.class_names == ("drink water", "hand waving")  # the actions present, in order
    assert [ds.class_names[k] for k in ds.labels] == [NTU_CLASSES[int(i[-3:]) - 1] for i in ds.ids]
    performers = [parse_ntu_name(i).performer for i in ds.ids]
    assert ds.folds.tolist() == [TRAIN_FOLD if p in (1, 2) else TEST_FOLD for p in performers]
    cameras = [parse_ntu_name(i).camera for i in load_ntu(source, "cross-view")[0].ids]
    want = [TRAIN_FOLD if c in (2, 3) else TEST_FOLD for c in cameras]
    assert load_ntu(source, "cross-view")[0].folds.tolist() == want
    np.testing.assert_array_equal(ds.sequences[1][0, :25], _MOVING[0])


def test_an_ntu_file_with_another_name_is_refused(tmp_path: Path):
    source = _ntu_folder(tmp_path / "ntu")
    (source / "clip.skeleton").write_text(_skeleton_text([[(STILL, _STILL[0])]]))
    with pytest.raises(ValueError, match=r"clip\.skeleton: 'clip' is not an NTU RGB\+D name"):
        load_ntu(source)


def _same(folder: Path, want: SkeletonDataset) -> None:
    got = read_dataset_folder(folder)
    assert got.name == want.name and got.class_names == want.class_names
    assert replace(got.layout, name=want.layout.name) == want.layout
    assert got.ids == [sequence_stem(i) for i in want.ids]
    np.testing.assert_array_equal(got.labels, want.labels)
    np.testing.assert_array_equal(got.folds, want.folds)
    for x, y in zip(got.sequences, want.sequences, strict=True):
        np.testing.assert_array_equal(x, y)


def test_convert_ntu_writes_a_folder_that_reads_back_equal(tmp_path: Path):
    source = _ntu_folder(tmp_path / "ntu")
    result = runner.invoke(
        convert_app,
        ["ntu", str(source), "--out", str(tmp_path / "out"), "--benchmark", "cross-view"],
    )
    assert result.exit_code == 0, result.output
    assert "left out 1 file(s) with no body in any frame: S002C001P001R001A001" in result.output
    assert "4 sequences (2 train, 2 test), 2 classes, layout 'ntu' (50 joints)" in result.output
    _same(tmp_path / "out", load_ntu(source, "cross-view")[0])


# ----------------------------------------------------------------------------- per-frame CSV

COCO = get_layout("coco17")


def _frame_csv(
    path: Path,
    rows: list[tuple[str, int, str, str | None]],
    *,
    axes: str = "xyz",
    named: bool = True,
) -> dict[tuple[str, int], np.ndarray]:
    """A per-frame CSV of coco17 rows (sequence, frame, label, split or None); the (17, 3)
    coordinates written, by (sequence, frame)."""
    split = rows[0][3] is not None
    coords = [
        f"{n}_{a}" if named else f"{a}{j}" for j, n in enumerate(COCO.joint_names) for a in axes
    ]
    lines = [",".join(["sequence", "frame", "label", *(["split"] if split else []), *coords])]
    written = {}
    for k, (seq, frame, label, fold) in enumerate(rows):
        xyz = np.random.default_rng(k).uniform(1, 500, (17, 3)).astype(np.float32)
        if len(axes) == 2:
            xyz[:, 2] = 0
        written[seq, frame] = xyz
        values = [repr(float(v)) for v in xyz[:, : len(axes)].reshape(-1)]
        lines.append(",".join([seq, str(frame), label, *([fold] if split else []), *values]))
    path.write_text("\n".join(lines) + "\n")
    return written


CSV_ROWS = [
    ("clip/1", 0, "wave", "train"), ("clip/1", 1, "wave", "train"), ("clip/2", 5, "bow", "train"),
    ("clip/1", 3, "wave", "train"), ("clip/3", 0, "bow", "test"), ("clip/4", 0, "wave", "test"),
]  # fmt: skip


@pytest.mark.parametrize("named", [True, False])
def test_a_frame_csv_lands_each_value_in_its_frame_and_joint(tmp_path: Path, named: bool):
    written = _frame_csv(tmp_path / "poses.csv", CSV_ROWS, named=named)
    ds, kind = read_frame_csv(tmp_path / "poses.csv", COCO, name="poses")
    assert kind == "train-test" and ds.ids == ["clip/1", "clip/2", "clip/3", "clip/4"]
    assert ds.class_names == ("wave", "bow") and ds.labels.tolist() == [0, 1, 1, 0]
    assert ds.folds.tolist() == [TRAIN_FOLD, TRAIN_FOLD, TEST_FOLD, TEST_FOLD]
    clip1 = ds.sequences[0]
    assert clip1.shape == (4, 17, 3)  # frames 0..3
    for t in (0, 1, 3):
        np.testing.assert_array_equal(clip1[t], written["clip/1", t])
    np.testing.assert_array_equal(clip1[2], 0.0)  # frame 2 has no row: a missing detection
    np.testing.assert_array_equal(ds.sequences[1], written["clip/2", 5][None])  # starts at 5


def test_a_planar_csv_has_z_zero_and_empty_cells_are_a_joint_not_detected(tmp_path: Path):
    path = tmp_path / "poses.csv"
    written = _frame_csv(path, CSV_ROWS, axes="xy")
    lines = path.read_text().splitlines()
    cells = lines[1].split(",")
    cells[4 + 2 * 3 : 4 + 2 * 3 + 2] = ["", ""]  # joint 3 of clip/1 frame 0: not detected
    path.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    ds, _ = read_frame_csv(path, COCO, name="poses", planar=True)
    want = written["clip/1", 0].copy()
    want[3] = 0.0
    np.testing.assert_array_equal(ds.sequences[0][0], want)
    assert np.all(ds.sequences[0][..., 2] == 0.0)


def test_a_csv_without_a_split_deals_each_class_into_folds(tmp_path: Path):
    rows = [(f"s{k}", 0, ("wave", "bow")[k % 2], None) for k in range(8)]
    _frame_csv(tmp_path / "poses.csv", rows)
    ds, kind = read_frame_csv(tmp_path / "poses.csv", COCO, name="poses", folds=3)
    assert kind == "folds" and ds.folds.tolist() == [0, 0, 1, 1, 2, 2, 0, 0]


def _csv_edit(line: int, column: int, value: str) -> tuple[int, int, str]:
    return line, column, value


CSV_REFUSALS: dict[str, tuple[tuple[int, int, str], str]] = {
    "an unknown column": (_csv_edit(1, 5, "nose_q"), r"line 1: column 'nose_q' is neither"),
    "a column twice": (_csv_edit(1, 5, "nose_x"), r"line 1: column 'nose_x' repeats column 5"),
    "a frame not a number": (_csv_edit(3, 1, "one"), r"line 3: frame 'one' is not a frame number"),
    "a repeated frame": (_csv_edit(3, 1, "0"), r"line 3: sequence 'clip/1' frame 0 repeats line 2"),
    "a label that changes": (
        _csv_edit(3, 2, "bow"),
        r"line 3: sequence 'clip/1' has label 'bow', but line 2 says 'wave'",
    ),
    "a split that changes": (
        _csv_edit(5, 3, "test"),
        r"line 5: sequence 'clip/1' has split 'test', but line 2 says 'train'",
    ),
    "a bad split": (_csv_edit(4, 3, "val"), r"line 4: split 'val' is neither train/test"),
    "a value not a number": (
        _csv_edit(6, 7, "abc"),
        r"line 6: column 'left_eye_x': 'abc' is not a number",
    ),
    "a NaN": (_csv_edit(6, 7, "nan"), r"line 6: column 'left_eye_x' is nan"),
    "beyond float32": (_csv_edit(6, 7, "1e39"), r"line 6: column 'left_eye_x' is 1e39"),
    "a joint half empty": (
        _csv_edit(2, 4, ""),
        r"line 2: column 'nose_x' is empty, but joint 0's other cells are not",
    ),
    "an empty sequence name": (_csv_edit(2, 0, ""), r"line 2: empty sequence"),
    "a timestamp for a frame": (
        _csv_edit(3, 1, "100000000"),
        r"line 3: sequence 'clip/1' spans frames 0 to 100000000, more than 100,000",
    ),
}


@pytest.mark.parametrize("case", list(CSV_REFUSALS))
def test_a_bad_frame_csv_is_refused_naming_the_file_and_line(tmp_path: Path, case: str):
    (line, column, value), message = CSV_REFUSALS[case]
    path = tmp_path / "poses.csv"
    _frame_csv(path, CSV_ROWS)
    lines = [row.split(",") for row in path.read_text().splitlines()]
    lines[line - 1][column] = value
    path.write_text("\n".join(",".join(row) for row in lines) + "\n")
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": " + message):
        read_frame_csv(path, COCO, name="poses")


def test_a_2d_file_is_refused_unless_read_as_planar(tmp_path: Path):
    path = tmp_path / "poses.csv"
    _frame_csv(path, CSV_ROWS, axes="xy")
    with pytest.raises(ValueError, match=r"line 1: no column for joint 'nose' z .* as planar"):
        read_frame_csv(path, COCO, name="poses")
    _frame_csv(path, CSV_ROWS)
    with pytest.raises(ValueError, match=r"line 1: column 'nose_z' is neither .* not planar"):
        read_frame_csv(path, COCO, name="poses", planar=True)


def test_train_test_and_fold_numbers_are_not_mixed(tmp_path: Path):
    rows = [*CSV_ROWS[:4], ("clip/3", 0, "bow", "1"), ("clip/4", 0, "wave", "1")]
    _frame_csv(tmp_path / "poses.csv", rows)
    with pytest.raises(ValueError, match=r"line 6: split '1' is a fold number but line 2 says"):
        read_frame_csv(tmp_path / "poses.csv", COCO, name="poses")


def test_convert_csv_writes_a_folder_that_reads_back_equal(tmp_path: Path):
    _frame_csv(tmp_path / "poses.csv", CSV_ROWS)
    args = [
        "csv",
        str(tmp_path / "poses.csv"),
        "--out",
        str(tmp_path / "out"),
        "--layout",
        "coco17",
    ]
    result = runner.invoke(convert_app, args)
    assert result.exit_code == 0, result.output
    assert "4 sequences (2 train, 2 test), 2 classes, layout 'coco17' (17 joints)" in result.output
    _same(tmp_path / "out", read_frame_csv(tmp_path / "poses.csv", COCO, name="poses")[0])
    assert (tmp_path / "out" / "sequences" / "clip_1.npy").is_file()


def test_convert_refuses_naming_the_problem(tmp_path: Path):
    _frame_csv(tmp_path / "poses.csv", CSV_ROWS)
    args = ["csv", str(tmp_path / "poses.csv"), "--out", str(tmp_path), "--layout", "coco17"]
    result = runner.invoke(convert_app, args)  # tmp_path holds poses.csv: not empty
    assert result.exit_code == 2 and f"mrmp convert csv: {tmp_path}: not empty" in result.output
    args[-1] = "kinect-v9"
    result = runner.invoke(convert_app, args)
    assert result.exit_code == 2 and "unknown skeleton layout 'kinect-v9'" in result.output
    result = runner.invoke(convert_app, ["ntu", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and f"{tmp_path}: no .skeleton files" in result.output


# ----------------------------------------------------------------------------- the doc

DOC = Path(__file__).resolve().parents[1] / "docs" / "datasets.md"


def _block(text: str, fence: str) -> str:
    start = text.index(f"```{fence}\n") + len(f"```{fence}\n")
    return text[start : text.index("```", start)]


def test_the_docs_worked_conversion_runs_and_prints_what_the_doc_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    section = DOC.read_text().split("### A worked conversion", 1)[1]
    command, *said = _block(section, "console").strip().splitlines()
    words = command.removeprefix("$ ").split()
    assert words[:2] == ["mrmp", "convert"]
    monkeypatch.chdir(tmp_path)
    exec(compile(_block(section, "python"), str(DOC), "exec"), {})
    result = runner.invoke(convert_app, words[2:])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == said
    ds = read_dataset_folder(tmp_path / "my-poses")
    assert len(ds) == 6 and all(x.shape == (20, 17, 3) for x in ds.sequences)
    assert all(np.all(x[..., 2] == 0.0) for x in ds.sequences)
    wrist = COCO.joint_names.index("left_wrist")
    assert ds.ids[0] == "clip-0" and np.all(ds.sequences[0][3, wrist] == 0.0)
    assert np.count_nonzero(np.all(np.concatenate(ds.sequences) == 0.0, axis=-1)) == 1


# ----------------------------------------------------------------------------- real data


@needs_data
@pytest.mark.parametrize("declare", [False, True])
def test_convert_sbu_writes_the_readers_dataset(tmp_path: Path, declare: bool):
    args = ["sbu", "--out", str(tmp_path / "sbu"), "--data-dir", str(data_root())]
    result = runner.invoke(convert_app, [*args, *(["--declare-layout"] if declare else [])])
    assert result.exit_code == 0, result.output
    assert "282 sequences (per fold 55, 52, 56, 54, 65), 8 classes" in result.output
    _same(tmp_path / "sbu", load_sbu(data_root()))
    assert read_dataset_folder(tmp_path / "sbu").layout == SBU_LAYOUT


@pytest.mark.skipif(not (data_root() / "fpha").is_dir(), reason="../shared/data is absent")
def test_convert_fpha_writes_the_readers_dataset_as_train_test(tmp_path: Path):
    result = runner.invoke(convert_app, ["fpha", "--out", str(tmp_path / "fpha")])
    assert result.exit_code == 0, result.output
    assert "1175 sequences (600 train, 575 test), 45 classes" in result.output
    assert (tmp_path / "fpha" / "labels.csv").read_text().splitlines()[1].endswith(",train")
    _same(tmp_path / "fpha", load_fpha(data_root()))
