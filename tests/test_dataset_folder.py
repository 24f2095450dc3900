"""The documented dataset folder (training/datasets/folder.py, docs/datasets.md): valid folders
read into the expected SkeletonDataset, and every refusal names the file and the row or key."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mrmp.skeleton import FPHA_LAYOUT, SBU_LAYOUT, Layout, get_layout
from mrmp.skeleton.layouts import CoordinateFrame, repeat_persons
from tests.conftest import needs_data
from training.datasets import (
    DatasetFolderError,
    SkeletonDataset,
    data_root,
    load_fpha,
    load_sbu,
    read_dataset_folder,
)
from training.datasets.folder import TEST_FOLD, TRAIN_FOLD
from training.datasets.folder_writer import Split, sequence_stem, write_dataset_folder

FRAME = {"up": "+y", "handedness": "right", "axes": "metres: x right, y up, z toward the viewer"}
# One declared person: a chain of four joints.
PERSON = {"joint_names": ["hip", "chest", "neck", "head"], "bones": [[0, 1], [1, 2], [2, 3]]}


def _sequence(frames: int = 6, joints: int = 8, seed: int = 0) -> np.ndarray:
    """(T, J, 3) float32 with every joint observed."""
    return np.random.default_rng(seed).uniform(0.1, 2.0, (frames, joints, 3)).astype(np.float32)


def _write(
    folder: Path,
    rows: list[tuple[str, str, str]],
    *,
    layout: str | dict | None = None,
    frame: dict | None = FRAME,
    classes: tuple[str, ...] = ("wave", "bow"),
    fmt: str = "npy",
    persons: int = 2,
) -> dict[str, np.ndarray]:
    """A dataset folder of `rows` (sequence, label, split), each sequence written as `fmt`;
    the sequences written, by stem."""
    layout = layout if layout is not None else {**PERSON, "persons": persons}
    info: dict = {"name": "toy", "classes": list(classes), "layout": layout}
    if frame is not None:
        info["frame"] = frame
    (folder / "sequences").mkdir(parents=True)
    (folder / "dataset.json").write_text(json.dumps(info))
    lines = ["sequence,label,split", *(",".join(row) for row in rows)]
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    joints = get_layout(layout).num_joints if isinstance(layout, str) else 4 * layout["persons"]
    written = {}
    for k, (stem, _, _) in enumerate(rows):
        x = _sequence(frames=5 + k, joints=joints, seed=k)
        _write_sequence(folder / "sequences", stem, x, fmt)
        written[stem] = x
    return written


def _write_sequence(folder: Path, stem: str, x: np.ndarray, fmt: str) -> None:
    if fmt == "npy":
        np.save(folder / f"{stem}.npy", x)
    else:
        header = ",".join(f"{c}{j}" for j in range(x.shape[1]) for c in "xyz")
        body = "\n".join(",".join(repr(float(v)) for v in frame.reshape(-1)) for frame in x)
        (folder / f"{stem}.csv").write_text(header + "\n" + body + "\n")


TRAIN_TEST = [("s1", "wave", "train"), ("s2", "bow", "train"), ("s3", "wave", "test")]
FOLDS = [("a", "wave", "0"), ("b", "bow", "0"), ("c", "wave", "1"), ("d", "bow", "1")]


# ----------------------------------------------------------------------------- valid folders


@pytest.mark.parametrize("fmt", ["npy", "csv"])
def test_a_train_test_folder_reads_into_the_expected_dataset(tmp_path: Path, fmt: str):
    written = _write(tmp_path, TRAIN_TEST, fmt=fmt)
    ds = read_dataset_folder(tmp_path)
    assert isinstance(ds, SkeletonDataset) and ds.name == "toy"
    assert ds.class_names == ("wave", "bow") and ds.ids == ["s1", "s2", "s3"]
    assert ds.labels.tolist() == [0, 1, 0]
    assert ds.folds.tolist() == [TRAIN_FOLD, TRAIN_FOLD, TEST_FOLD]
    train, test = ds.split(TEST_FOLD)
    assert train.tolist() == [0, 1] and test.tolist() == [2]
    for stem, x in zip(ds.ids, ds.sequences, strict=True):
        assert x.dtype == np.float32 and x.shape == written[stem].shape
        np.testing.assert_array_equal(x, written[stem])


def test_a_declared_layout_becomes_the_persons_layout(tmp_path: Path):
    _write(tmp_path, TRAIN_TEST, layout={**PERSON, "persons": 2, "root": 1})
    layout = read_dataset_folder(tmp_path).layout
    assert layout.name == "toy" and layout.persons == 2 and layout.num_joints == 8
    assert layout.joint_names[:5] == ("A_hip", "A_chest", "A_neck", "A_head", "B_hip")
    within = [(0, 1), (1, 2), (2, 3), (4, 5), (5, 6), (6, 7)]
    between = [(0, 4), (1, 5), (2, 6), (3, 7)]  # each joint to the same joint of the next
    assert list(layout.bones) == within + between
    assert layout.person_roots() == (1, 5)
    assert layout.frame == CoordinateFrame(**FRAME)


def test_one_declared_person_keeps_its_joint_names(tmp_path: Path):
    _write(tmp_path, TRAIN_TEST, persons=1)
    layout = read_dataset_folder(tmp_path).layout
    assert layout.joint_names == tuple(PERSON["joint_names"]) and layout.persons == 1
    assert list(layout.bones) == [(0, 1), (1, 2), (2, 3)] and layout.root is None


def test_fold_numbers_are_kept_as_folds(tmp_path: Path):
    _write(tmp_path, FOLDS, fmt="csv")
    ds = read_dataset_folder(tmp_path)
    assert ds.folds.tolist() == [0, 0, 1, 1]
    train, test = ds.split(1)
    assert train.tolist() == [0, 1] and test.tolist() == [2, 3]


def test_a_built_in_layout_by_name_with_its_own_frame_or_the_given_one(tmp_path: Path):
    _write(tmp_path / "own", TRAIN_TEST, layout="sbu", frame=None)
    assert read_dataset_folder(tmp_path / "own").layout == SBU_LAYOUT
    _write(tmp_path / "given", TRAIN_TEST, layout="sbu", frame=FRAME)
    layout = read_dataset_folder(tmp_path / "given").layout
    assert layout.frame == CoordinateFrame(**FRAME) and layout.bones == SBU_LAYOUT.bones


def test_missing_joints_written_as_zeros_are_kept_for_the_missing_detection_rule(tmp_path: Path):
    _write(tmp_path, TRAIN_TEST)
    x = _sequence(frames=4)
    x[1] = 0.0  # a frame with nothing detected
    x[:, 5] = 0.0  # a joint never detected
    np.save(tmp_path / "sequences" / "s1.npy", x)
    np.testing.assert_array_equal(read_dataset_folder(tmp_path).sequences[0], x)


def test_a_csv_sequence_without_a_header_reads_the_same(tmp_path: Path):
    written = _write(tmp_path, TRAIN_TEST, fmt="csv")
    path = tmp_path / "sequences" / "s2.csv"
    path.write_text(path.read_text().split("\n", 1)[1])
    np.testing.assert_array_equal(read_dataset_folder(tmp_path).sequences[1], written["s2"])


# ----------------------------------------------------------------------------- refusals

Edit = Callable[[Path], None]


def _replace_json(**changes: object) -> Edit:
    def edit(folder: Path) -> None:
        info = json.loads((folder / "dataset.json").read_text())
        info.update(changes)
        (folder / "dataset.json").write_text(json.dumps(info))

    return edit


def _drop_json_key(key: str) -> Edit:
    def edit(folder: Path) -> None:
        info = json.loads((folder / "dataset.json").read_text())
        del info[key]
        (folder / "dataset.json").write_text(json.dumps(info))

    return edit


def _labels(*rows: str) -> Edit:
    def edit(folder: Path) -> None:
        (folder / "labels.csv").write_text("\n".join(["sequence,label,split", *rows]) + "\n")

    return edit


def _remove(name: str) -> Edit:
    def edit(folder: Path) -> None:
        path = folder / name
        if path.is_dir():
            for child in path.iterdir():
                child.unlink()
            path.rmdir()
        else:
            path.unlink()

    return edit


def _sequence_file(stem: str, x: np.ndarray) -> Edit:
    def edit(folder: Path) -> None:
        np.save(folder / "sequences" / f"{stem}.npy", x)

    return edit


def _text(name: str, text: str) -> Edit:
    def edit(folder: Path) -> None:
        (folder / name).write_text(text)

    return edit


def _nan_at(frame: int, joint: int) -> np.ndarray:
    x = _sequence()
    x[frame, joint, 2] = np.nan
    return x


_ROW_1 = "s1,wave,train"
REFUSALS: dict[str, tuple[Edit, str]] = {
    "no dataset.json": (_remove("dataset.json"), r"dataset\.json: missing"),
    "no labels.csv": (_remove("labels.csv"), r"labels\.csv: missing"),
    "no sequences/": (_remove("sequences"), r"sequences: missing"),
    "bad JSON": (_text("dataset.json", '{"name": "toy",'), r"dataset\.json: bad JSON at line 1"),
    "unknown key": (
        _replace_json(labels="x"),
        r"dataset\.json: key 'labels': unknown key \(known: name, classes, layout, frame\)",
    ),
    "unknown key in the layout": (
        _replace_json(layout={**PERSON, "hands": 0}),
        r"dataset\.json: key 'layout\.hands': unknown key "
        r"\(known: joint_names, bones, persons, root\)",
    ),
    "unknown key in the frame": (
        _replace_json(frame={**FRAME, "unit": "m"}),
        r"dataset\.json: key 'frame\.unit': unknown key \(known: up, handedness, axes\)",
    ),
    "missing key": (_drop_json_key("classes"), r"dataset\.json: key 'classes': Field required"),
    "classes not a list": (_replace_json(classes="wave"), r"dataset\.json: key 'classes'"),
    "a string joint index": (
        _replace_json(layout={**PERSON, "bones": [[0, "1"]]}),
        r"dataset\.json: key 'layout\.bones\[0\]\[1\]'",
    ),
    "unknown built-in layout": (
        _replace_json(layout="kinect-v9"),
        r"dataset\.json: key 'layout': unknown skeleton layout 'kinect-v9'; known layouts: "
        r".*fpha.*sbu",
    ),
    "a layout neither name nor object": (
        _replace_json(layout=[1, 2]),
        r"dataset\.json: key 'layout': expected a built-in layout's name or an object",
    ),
    "bone out of range": (
        _replace_json(layout={**PERSON, "bones": [[0, 1], [3, 4]]}),
        r"dataset\.json: key 'layout\.bones\[1\]': bone \[3, 4\] names a joint outside 0\.\.3",
    ),
    "negative bone": (
        _replace_json(layout={**PERSON, "bones": [[-1, 1]]}),
        r"dataset\.json: key 'layout\.bones\[0\]': bone \[-1, 1\] names a joint outside",
    ),
    "root out of range": (
        _replace_json(layout={**PERSON, "root": 4}),
        r"dataset\.json: key 'layout\.root': joint 4 is outside 0\.\.3",
    ),
    "self-loop bone": (
        _replace_json(layout={**PERSON, "bones": [[0, 1], [2, 2]]}),
        r"dataset\.json: key 'layout\.bones\[1\]': bone \[2, 2\] joins a joint to itself",
    ),
    "repeated bone": (
        _replace_json(layout={**PERSON, "bones": [[0, 1], [1, 0]]}),
        r"dataset\.json: key 'layout\.bones\[1\]': bone \[1, 0\] repeats bones\[0\]",
    ),
    "repeated joint name": (
        _replace_json(layout={**PERSON, "joint_names": ["a", "b", "a", "c"]}),
        r"dataset\.json: key 'layout\.joint_names': joint 'a' is listed twice",
    ),
    "too many persons": (
        _replace_json(layout={**PERSON, "persons": 27}),
        r"dataset\.json: key 'layout\.persons'",
    ),
    "a declared layout without a frame": (
        _replace_json(frame=None),
        r"dataset\.json: key 'frame'",
    ),
    "repeated class": (
        _replace_json(classes=["wave", "bow", "wave"]),
        r"dataset\.json: key 'classes': class 'wave' is listed twice",
    ),
    "one class": (_replace_json(classes=["wave"]), r"dataset\.json: key 'classes'"),
    "wrong header": (
        _text("labels.csv", "name,label,split\ns1,wave,train\n"),
        r"labels\.csv: header must be sequence,label,split, got name,label,split",
    ),
    "no data rows": (_labels(), r"labels\.csv: no data rows"),
    "a row with two fields": (
        _labels(_ROW_1, "s2,bow"),
        r"labels\.csv: row 2: 2 fields, expected 3",
    ),
    "a path for a stem": (
        _labels(_ROW_1, "../s2,bow,train"),
        r"labels\.csv: row 2: sequence '\.\./s2' is not a file stem under sequences/",
    ),
    "unknown class": (
        _labels(_ROW_1, "s2,jump,train", "s3,bow,test"),
        r"labels\.csv: row 2: unknown class 'jump'; classes in dataset\.json: wave, bow",
    ),
    "duplicate sequence row": (
        _labels(_ROW_1, "s2,bow,train", "s1,wave,test"),
        r"labels\.csv: row 3: sequence 's1' repeats row 1",
    ),
    "unknown split": (
        _labels(_ROW_1, "s2,bow,val"),
        r"labels\.csv: row 2: split 'val' is neither train/test nor a fold number",
    ),
    "negative fold": (
        _labels("s1,wave,0", "s2,bow,-1"),
        r"labels\.csv: row 2: split '-1' is neither",
    ),
    "mixed split kinds": (
        _labels(_ROW_1, "s2,bow,1", "s3,wave,test"),
        r"labels\.csv: row 2: split '1' is a fold number but row 1 says 'train'",
    ),
    "no training rows": (
        _labels("s1,wave,test", "s2,bow,test"),
        r"labels\.csv: no training rows",
    ),
    "no test rows": (
        _labels(_ROW_1, "s2,bow,train"),
        r"labels\.csv: the test split has no rows",
    ),
    "one fold only": (
        _labels("s1,wave,0", "s2,bow,0"),
        r"labels\.csv: every row is in fold 0, so holding it out leaves no training rows",
    ),
    "a fold with no rows": (
        _labels("s1,wave,0", "s2,bow,0", "s3,wave,2", "s4,bow,2"),
        r"labels\.csv: fold 1 has no rows",
    ),
    "a class with no training sequence": (
        _labels(_ROW_1, "s2,wave,train", "s3,bow,test"),
        r"labels\.csv: class 'bow' has no training sequence when the test split is held out "
        r"\(its rows: 3\)",
    ),
    "a class only in one fold": (
        _labels("s1,wave,0", "s2,bow,0", "s3,wave,1", "s4,wave,1"),
        r"labels\.csv: class 'bow' has no training sequence when fold 0 is held out "
        r"\(its rows: 2\)",
    ),
    "missing sequence file": (
        _remove("sequences/s2.npy"),
        r"labels\.csv: row 2: sequence file .*sequences/s2\.npy \(or \.csv\) is missing",
    ),
    "both npy and csv": (
        _text("sequences/s2.csv", "1,2,3\n"),
        r"labels\.csv: row 2: both s2\.npy and s2\.csv exist",
    ),
    "wrong joint count": (
        _sequence_file("s2", _sequence(joints=7)),
        r"s2\.npy: 7 joints per frame, the layout has 8 joints \(2 person\(s\) x 4\)",
    ),
    "not 3 coordinates": (
        _sequence_file("s2", _sequence()[..., :2]),
        r"s2\.npy: 2 coordinates per joint, expected 3",
    ),
    "not 3 dimensions": (
        _sequence_file("s2", _sequence().reshape(6, 24)),
        r"s2\.npy: shape \(6, 24\), expected \(frames, 8, 3\)",
    ),
    "not numbers": (
        _sequence_file("s2", np.array([[["a"] * 3] * 8])),
        r"s2\.npy: dtype <U1 is not a real number type",
    ),
    "not an npy file": (
        _text("sequences/s2.npy", "x,y,z\n1.0,2.0,3.0\n"),
        r"s2\.npy: not a readable \.npy array \(the magic string is not correct",
    ),
    "NaN": (
        _sequence_file("s2", _nan_at(frame=3, joint=5)),
        r"s2\.npy: frame 3, joint 5 \(B_chest\): z is nan",
    ),
    "Inf": (
        _sequence_file("s2", np.where(np.arange(8)[:, None] == 7, np.inf, _sequence())),
        r"s2\.npy: frame 0, joint 7 \(B_head\): x is inf",
    ),
    "beyond float32": (
        _sequence_file("s2", np.full((2, 8, 3), 1e39)),
        r"s2\.npy: frame 0, joint 0 \(A_hip\): x is inf \(NaN or beyond float32",
    ),
    "empty sequence": (
        _sequence_file("s2", np.zeros((0, 8, 3), np.float32)),
        r"s2\.npy: empty sequence",
    ),
    "no joint observed": (
        _sequence_file("s2", np.zeros((4, 8, 3), np.float32)),
        r"s2\.npy: no joint is observed in any frame",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_each_problem_is_refused_naming_the_file_and_the_row_or_key(tmp_path: Path, case: str):
    _write(tmp_path, TRAIN_TEST)
    edit, message = REFUSALS[case]
    edit(tmp_path)
    with pytest.raises(DatasetFolderError, match=message) as caught:
        read_dataset_folder(tmp_path)
    assert isinstance(caught.value, ValueError)
    assert str(tmp_path) in str(caught.value)  # the file is named by its path


CSV_REFUSALS: dict[str, tuple[str, str]] = {
    "wrong value count": (
        "x\n" + ",".join(["1"] * 24) + "\n" + ",".join(["1"] * 21) + "\n",
        r"line 3: 21 values, expected 24",
    ),
    "not a number": (
        ",".join(["1"] * 24) + "\n" + ",".join(["1"] * 23 + ["one"]) + "\n",
        r"line 2: 'one' is not a number",
    ),
    "NaN": (
        "h\n" + ",".join(["1"] * 24) + "\n" + ",".join(["1"] * 4 + ["nan"] + ["1"] * 19) + "\n",
        r"line 3, frame 1, joint 1 \(A_chest\): y is nan",
    ),
    "only a header": ("x0,y0,z0\n", r"empty sequence"),
    "all zeros": (",".join(["0"] * 24) + "\n", r"no joint is observed"),
}


@pytest.mark.parametrize("case", list(CSV_REFUSALS))
def test_a_csv_sequence_is_refused_naming_the_file_and_line(tmp_path: Path, case: str):
    _write(tmp_path, TRAIN_TEST, fmt="csv")
    text, message = CSV_REFUSALS[case]
    (tmp_path / "sequences" / "s3.csv").write_text(text)
    with pytest.raises(DatasetFolderError, match=r"sequences/s3\.csv: " + message):
        read_dataset_folder(tmp_path)


def test_a_missing_folder_is_refused(tmp_path: Path):
    with pytest.raises(DatasetFolderError, match=re.escape(f"{tmp_path / 'nope'}: not a")):
        read_dataset_folder(tmp_path / "nope")


# ----------------------------------------------------------------------------- real data


def _assert_reads_back_equal(folder: Path, want: SkeletonDataset) -> SkeletonDataset:
    """The folder read back: `want`'s sequences bitwise, labels, folds, classes, layout (its name
    aside) and its ids as file stems."""
    got = read_dataset_folder(folder)
    assert got.name == want.name and got.class_names == want.class_names
    assert replace(got.layout, name=want.layout.name) == want.layout  # joints, bones, frame
    assert got.ids == [sequence_stem(i) for i in want.ids]
    np.testing.assert_array_equal(got.labels, want.labels)
    np.testing.assert_array_equal(got.folds, want.folds)
    assert len(got) == len(want)
    for x, y in zip(got.sequences, want.sequences, strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)
    return got


def _toy_dataset(layout: Layout, folds: list[int], name: str = "toy") -> SkeletonDataset:
    return SkeletonDataset(
        name=name,
        layout=layout,
        class_names=("wave", "bow, deeply"),  # a comma: labels.csv quotes it
        sequences=[_sequence(5 + k, layout.num_joints, seed=k) for k in range(len(folds))],
        labels=np.arange(len(folds)) % 2,
        folds=np.array(folds),
        ids=[f"set/{k}" for k in range(len(folds))],
    )


@pytest.mark.parametrize("declare", [False, True])
@pytest.mark.parametrize("split", ["folds", "train-test"])
def test_the_writer_writes_a_folder_that_reads_back_equal(
    tmp_path: Path, declare: bool, split: Split
):
    ds = _toy_dataset(SBU_LAYOUT, [0, 0, 0, 0, 1, 1], name="sbu")
    write_dataset_folder(ds, tmp_path / "out", declare_layout=declare, split=split)
    info = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert isinstance(info["layout"], dict) == declare
    cells = (tmp_path / "out" / "labels.csv").read_text().splitlines()[1].split(",")
    assert cells[0] == "set_0" and cells[-1] == ("0" if split == "folds" else "train")
    got = _assert_reads_back_equal(tmp_path / "out", ds)
    assert got.layout == SBU_LAYOUT  # the declared form gives back the inter-person links


def test_a_built_in_layout_in_another_frame_keeps_its_frame(tmp_path: Path):
    frame = CoordinateFrame(**FRAME)
    ds = _toy_dataset(replace(get_layout("coco17"), frame=frame), [0, 0, 1, 1, 2, 2])
    write_dataset_folder(ds, tmp_path)
    info = json.loads((tmp_path / "dataset.json").read_text())
    assert info["layout"] == "coco17" and info["frame"] == FRAME
    assert _assert_reads_back_equal(tmp_path, ds).layout.frame == frame


def test_a_layout_that_is_not_built_in_is_declared(tmp_path: Path):
    person = Layout("hand", ("wrist", "tip"), ((0, 1),), 1, CoordinateFrame(**FRAME), root=0)
    ds = _toy_dataset(repeat_persons(person, 3, link_persons=True, name="toy"), [0, 0, 1, 1])
    write_dataset_folder(ds, tmp_path)
    layout = json.loads((tmp_path / "dataset.json").read_text())["layout"]
    assert layout == {"joint_names": ["wrist", "tip"], "bones": [[0, 1]], "persons": 3, "root": 0}
    _assert_reads_back_equal(tmp_path, ds)


def _with(**changes: object) -> Callable[[SkeletonDataset], SkeletonDataset]:
    return lambda ds: replace(ds, **changes)


WRITER_REFUSALS: dict[str, tuple[Callable[[SkeletonDataset], SkeletonDataset], Split, str]] = {
    "persons not linked": (
        _with(layout=repeat_persons(get_layout("ntu25"), 2)),
        "folds",
        r"layout 'ntu25x2' \(2 persons\) has no declared form in a dataset folder",
    ),
    "two ids, one stem": (
        _with(ids=["a/b", "a_b", "c", "d"]),
        "folds",
        r"sequence ids 'a/b' and 'a_b' make the same file stem 'a_b'",
    ),
    "an id that makes no stem": (
        _with(ids=["a", "..", "c", "d"]),
        "folds",
        r"sequence id '\.\.' makes no file stem",
    ),
    "a class name labels.csv would change": (
        _with(class_names=("wave", " bow")),
        "folds",
        r"class ' bow': labels\.csv strips its cells",
    ),
    "train-test with three folds": (
        _with(folds=np.array([0, 1, 2, 1])),
        "train-test",
        r"split 'train-test' needs folds 0 \(train\) and 1 \(test\), got folds \[0, 1, 2\]",
    ),
}


@pytest.mark.parametrize("case", list(WRITER_REFUSALS))
def test_the_writer_refuses_what_the_folder_cannot_hold(tmp_path: Path, case: str):
    change, split, message = WRITER_REFUSALS[case]
    ds = change(_toy_dataset(SBU_LAYOUT, [0, 0, 1, 1], name="sbu"))
    with pytest.raises(ValueError, match=message):
        write_dataset_folder(ds, tmp_path / "out", split=split)
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_the_writer_refuses_a_folder_that_is_not_empty(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("mine")
    ds = _toy_dataset(SBU_LAYOUT, [0, 0, 1, 1], name="sbu")
    with pytest.raises(FileExistsError, match=re.escape(f"{tmp_path}: not empty")):
        write_dataset_folder(ds, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


@needs_data
@pytest.mark.parametrize("declare", [False, True])
def test_real_sbu_written_as_a_folder_reads_back_equal(tmp_path: Path, declare: bool):
    sbu = load_sbu(data_root())
    write_dataset_folder(sbu, tmp_path, declare_layout=declare)
    assert _assert_reads_back_equal(tmp_path, sbu).layout == SBU_LAYOUT


@pytest.mark.skipif(not (data_root() / "fpha").is_dir(), reason="../shared/data is absent")
def test_real_fpha_written_as_a_train_test_folder_reads_back_equal(tmp_path: Path):
    fpha = load_fpha(data_root())
    write_dataset_folder(fpha, tmp_path, split="train-test")
    assert _assert_reads_back_equal(tmp_path, fpha).layout == FPHA_LAYOUT


# ----------------------------------------------------------------------------- the doc

DOC = Path(__file__).resolve().parents[1] / "docs" / "datasets.md"


def test_the_docs_worked_example_runs_and_prints_what_the_doc_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    text = DOC.read_text()
    snippet = text[text.index("```python\n") + len("```python\n") :]
    snippet = snippet[: snippet.index("```")]
    said = text[text.index("It prints `") + len("It prints `") :]
    said = said[: said.index("`.")]
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, str(DOC), "exec"), {})
    assert " ".join(capsys.readouterr().out.split()) == " ".join(said.split())
    ds = read_dataset_folder(tmp_path / "toy-dataset")
    assert ds.layout.person_roots() == (0, 4)
    assert np.all(ds.sequences[0][5, 3] == 0.0)  # the undetected head is kept as (0, 0, 0)
