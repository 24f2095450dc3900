"""Tests for mrmp.skeleton: layouts, loaders (real data when present), descriptor, synthetic."""

from __future__ import annotations

import collections
import zipfile

import numpy as np
import pytest

from mrmp.skeleton import (
    LAYOUTS,
    DescriptorConfig,
    SkeletonError,
    describe,
    describe_batch,
    get_layout,
)
from mrmp.skeleton.descriptor import SkeletonNoExtentError, SkeletonUnderflowError
from training.datasets import (
    FPHA_CLASSES,
    SBU_CLASSES,
    SBU_FOLDS,
    SkeletonDataset,
    data_root,
    load_dataset,
    load_fpha,
    load_sbu,
    make_synthetic,
    read_fpha_text,
    read_sbu_file,
)

HAVE_SBU = (data_root() / "sbu_kinect_interaction").is_dir()
HAVE_FPHA = (data_root() / "fpha").is_dir()
needs_sbu = pytest.mark.skipif(not HAVE_SBU, reason="SBU data folder absent")
needs_fpha = pytest.mark.skipif(not HAVE_FPHA, reason="FPHA data folder absent")


# ----------------------------------------------------------------------------- layouts


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_layout_adjacency(name: str) -> None:
    layout = get_layout(name)
    adj = layout.adjacency()
    assert adj.shape == (layout.num_joints, layout.num_joints)
    assert adj.dtype == np.float32
    np.testing.assert_array_equal(adj, adj.T)
    assert set(np.unique(adj)) <= {0.0, 1.0}
    assert np.all(np.diag(adj) == 0)
    for a, b in layout.bones:
        assert 0 <= a < layout.num_joints and 0 <= b < layout.num_joints
    # No duplicate bones: each bone is one symmetric pair of ones.
    assert adj.sum() == 2 * len(layout.bones)
    assert len(layout.joint_names) == len(set(layout.joint_names))


def test_sbu_layout() -> None:
    layout = get_layout("sbu")
    assert layout.num_joints == 30 and layout.persons == 2
    assert layout.joint_names[0] == "A_HEAD" and layout.joint_names[-1] == "B_RIGHT_FOOT"
    assert len(layout.bones) == 2 * 14 + 15
    adj = layout.adjacency()
    for i in range(15):
        assert adj[i, i + 15] == 1
    # Each person's tree is connected: 15 nodes, 14 bones, all within-person.
    assert adj[:15, :15].sum() == 28 and adj[15:, 15:].sum() == 28


def test_each_built_in_layout_states_its_frame() -> None:
    sbu, fpha = get_layout("sbu").frame, get_layout("fpha").frame
    assert (sbu.up, sbu.handedness) == ("+y", "right")  # Kinect skeleton space
    assert (fpha.up, fpha.handedness) == ("-y", "right")  # the depth camera's image axes
    assert "y up" in sbu.axes and "y down" in fpha.axes


def test_fpha_layout() -> None:
    layout = get_layout("fpha")
    assert layout.num_joints == 21 and layout.persons == 1
    assert layout.joint_names[:3] == ("Wrist", "TMCP", "IMCP")
    assert layout.joint_names[6:9] == ("TPIP", "TDIP", "TTIP")
    assert layout.joint_names[-1] == "PTIP"
    assert len(layout.bones) == 20
    adj = layout.adjacency()
    assert adj[0, 1:6].sum() == 5  # wrist -> every MCP
    assert adj[2, 9] == adj[9, 10] == adj[10, 11] == 1  # index MCP -> PIP -> DIP -> TIP
    assert adj.sum(axis=1)[[8, 11, 14, 17, 20]].tolist() == [1] * 5  # tips are leaves


def test_get_layout_unknown() -> None:
    known = "coco17, fpha, kinect_v2, mediapipe33, ntu25, openpose18, openpose25, sbu"
    with pytest.raises(KeyError, match=f"known layouts: {known}"):
        get_layout("ntu")


# ----------------------------------------------------------------------------- descriptor


def _tiny() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.normal(size=(10, 5, 3))


def test_descriptor_shape_and_dtype() -> None:
    d = describe(_tiny(), DescriptorConfig())
    assert d.shape == (5, 12) and d.dtype == np.float32
    cfg = DescriptorConfig(chunks=3, velocity=True)
    assert cfg.feature_dim() == 18
    assert describe(_tiny(), cfg).shape == (5, 18)
    # Velocity features only append: positions stay the first 3*chunks.
    np.testing.assert_allclose(
        describe(_tiny(), cfg)[:, :9], describe(_tiny(), DescriptorConfig(3))
    )


def test_descriptor_config_roundtrip() -> None:
    cfg = DescriptorConfig(chunks=6, velocity=True)
    assert DescriptorConfig.from_dict(cfg.to_dict()) == cfg
    assert DescriptorConfig().feature_dim() == 12
    with pytest.raises(ValueError, match="unknown"):
        DescriptorConfig.from_dict({"chunks": 4, "bogus": 1})
    with pytest.raises(ValueError):
        DescriptorConfig(chunks=0)


def test_per_person_roots_measure_each_person_from_its_own_root() -> None:
    x = np.random.default_rng(2).normal(size=(9, 6, 3))  # two persons of 3 joints
    base = describe(x, DescriptorConfig(chunks=3))
    per_person = describe(x, DescriptorConfig(chunks=3, root_joint=(1, 4)))
    assert per_person.shape == (6, 18)
    pos = base.reshape(6, 3, 3)
    want = np.concatenate([pos[0:3] - pos[1], pos[3:6] - pos[4]])
    np.testing.assert_allclose(per_person[:, 9:].reshape(6, 3, 3), want, atol=1e-5)
    # One root is the single-person case: the same as an int root.
    one = describe(x, DescriptorConfig(chunks=3, root_joint=(1,)))
    np.testing.assert_array_equal(one, describe(x, DescriptorConfig(chunks=3, root_joint=1)))
    assert DescriptorConfig.from_dict({"root_joint": [1, 4]}).root_joint == (1, 4)
    with pytest.raises(SkeletonError, match="one in each of 2 equal blocks"):
        describe(x, DescriptorConfig(root_joint=(1, 2)))  # both roots in the first person
    with pytest.raises(SkeletonError, match="equal blocks"):
        describe(np.zeros((4, 5, 3)), DescriptorConfig(root_joint=(1, 4)))  # 5 joints, 2 persons
    for bad in (True, -1, (), "a", (1, True), 1.5):
        with pytest.raises(ValueError, match="root_joint"):
            DescriptorConfig(root_joint=bad)


def test_descriptor_translation_and_scale_invariance() -> None:
    x = _tiny()
    base = describe(x, DescriptorConfig(velocity=True))
    moved = describe(x * 37.5 + np.array([100.0, -3.0, 7.0]), DescriptorConfig(velocity=True))
    np.testing.assert_allclose(moved, base, rtol=1e-5, atol=1e-5)


def _random_rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_local_frame_block() -> None:
    cfg = DescriptorConfig(chunks=2, local_frame=(0, 1, 2))
    assert cfg.feature_dim() == 12 and cfg.rotating_features() == 6
    assert DescriptorConfig.from_dict(cfg.to_dict()) == cfg
    x = _tiny()
    d = describe(x, cfg)
    # The first block is the plain descriptor; the local block is, per frame, the joints in
    # the frame (origin joint 0, first axis to joint 1, second axis towards joint 2).
    np.testing.assert_allclose(d[:, :6], describe(x, DescriptorConfig(chunks=2)), atol=1e-6)
    rel = x - x[:, :1]
    u = rel[:, 1] / np.linalg.norm(rel[:, 1], axis=-1, keepdims=True)
    v = rel[:, 2] - (rel[:, 2] * u).sum(-1, keepdims=True) * u
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    local = np.stack([(rel * a[:, None]).sum(-1) for a in (u, v, np.cross(u, v))], axis=-1)
    rms = np.sqrt(np.mean(np.sum((x - x.mean(axis=(0, 1))) ** 2, axis=-1)))
    expect = np.concatenate([local[:5].mean(0), local[5:].mean(0)], axis=1) / rms
    np.testing.assert_allclose(d[:, 6:], expect, atol=1e-5)
    # It does not change when the whole skeleton turns (and moves, and is scaled).
    turned = describe(2.5 * x @ _random_rotation(0).T + np.array([4.0, -1.0, 9.0]), cfg)
    np.testing.assert_allclose(turned[:, 6:], d[:, 6:], atol=1e-5)
    for bad in ((0, 1), (0, 0, 1), (0, 1, -2), (0, 1, True)):
        with pytest.raises(ValueError, match="local_frame"):
            DescriptorConfig(local_frame=bad)
    with pytest.raises(SkeletonError, match="local frame"):
        describe(x, DescriptorConfig(local_frame=(0, 1, 7)))


def test_local_frame_degenerate_frames_give_zeros() -> None:
    cfg = DescriptorConfig(chunks=1, local_frame=(0, 1, 2))
    x = 100.0 + _tiny()
    on_origin = x.copy()
    on_origin[:, 1] = on_origin[:, 0]  # first axis joint on the origin
    on_axis = x.copy()
    on_axis[:, 2] = on_axis[:, 0] + 3.0 * (on_axis[:, 1] - on_axis[:, 0])  # b on the a axis
    for seq in (on_origin, on_axis):
        out = describe(seq, cfg)
        assert np.isfinite(out).all() and np.all(out[:, 3:] == 0)


def test_descriptor_matches_hand_computation() -> None:
    x = _tiny()  # T=10, M=4: chunks are frames [0,1], [2,3,4], [5,6], [7,8,9]
    c = x - x.mean(axis=(0, 1))
    c = c / np.sqrt(np.mean(np.sum(c**2, axis=-1)))
    expect = np.concatenate(
        [c[0:2].mean(0), c[2:5].mean(0), c[5:7].mean(0), c[7:10].mean(0)], axis=1
    )
    np.testing.assert_allclose(describe(x, DescriptorConfig(chunks=4)), expect, atol=1e-6)


def test_descriptor_short_sequence() -> None:
    x = _tiny()[:2]  # T=2 < M=4: chunks use frames floor(m*2/4) = 0, 0, 1, 1
    c = x - x.mean(axis=(0, 1))
    c = c / np.sqrt(np.mean(np.sum(c**2, axis=-1)))
    expect = np.concatenate([c[0], c[0], c[1], c[1]], axis=1)
    np.testing.assert_allclose(describe(x, DescriptorConfig()), expect, atol=1e-6)
    one = describe(_tiny()[:1], DescriptorConfig(velocity=True))
    assert one.shape == (5, 24) and np.isfinite(one).all()
    # A constant sequence has no extent to normalize: refused, not described as zeros.
    with pytest.raises(SkeletonNoExtentError, match="one point"):
        describe(np.full((3, 4, 3), (0.1, 2.0, -3.0)), DescriptorConfig())


@pytest.mark.parametrize(
    ("bad", "kwargs", "message"),
    [
        (np.zeros((5, 3)), {}, "3-D"),
        (np.zeros((5, 4, 2)), {}, "last dimension must be 3"),
        (np.zeros((0, 4, 3)), {}, "no frames"),
        (np.zeros((5, 4, 3)), {"num_joints": 30}, "expected 30 joints, got 4"),
        ([[[1, 2, 3]], [[1, 2]]], {}, "not a numeric"),
        ("abc", {}, "not a numeric"),
    ],
)
def test_descriptor_rejects_bad_shape(bad: object, kwargs: dict, message: str) -> None:
    with pytest.raises(SkeletonError, match=message):
        describe(bad, DescriptorConfig(), **kwargs)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_descriptor_rejects_non_finite(value: float) -> None:
    x = _tiny()
    x[3, 2, 1] = value
    with pytest.raises(SkeletonError, match=r"NaN or Inf .* frame 3, joint 2, coordinate y"):
        describe(x, DescriptorConfig())
    assert issubclass(SkeletonError, ValueError)


def test_descriptor_velocity_of_linear_motion() -> None:
    # x(t) = x0 + t*v: every chunk's mean per-frame displacement is v / RMS spread.
    rng = np.random.default_rng(2)
    x0, v = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    x = x0[None] + np.arange(9)[:, None, None] * v[None]
    c = x - x.mean(axis=(0, 1))
    rms = np.sqrt(np.mean(np.sum(c**2, axis=-1)))
    vel = describe(x, DescriptorConfig(chunks=3, velocity=True))[:, 9:]
    np.testing.assert_allclose(vel, np.tile(v / rms, 3), atol=1e-6)


def test_descriptor_rejects_overflow() -> None:
    with pytest.raises(SkeletonError, match="too large"):
        describe(np.full((2, 3, 3), 1e200) * np.arange(2)[:, None, None], DescriptorConfig())
    # Centred on the origin, the mean stays finite but the spread overflows: refused too, not
    # scaled to zeros.
    x = np.random.default_rng(0).standard_normal((10, 30, 3))
    x -= x.mean(axis=(0, 1))
    with pytest.raises(SkeletonError, match="too large"):
        describe(x * 1e155, DescriptorConfig())


def test_descriptor_rejects_a_spread_too_small_to_normalize_but_scales_any_other() -> None:
    x = _tiny()
    want = describe(x, DescriptorConfig())
    # 1e-140: the variance (1e-280) is still a normal float; the unit does not matter.
    np.testing.assert_allclose(describe(x * 1e-140, DescriptorConfig()), want, atol=1e-5)
    for tiny in (1e-160, 1e-300):  # the variance underflows
        with pytest.raises(SkeletonUnderflowError, match="too small to normalize"):
            describe(x * tiny, DescriptorConfig())
    # Subnormal input: where flush-to-zero is on (the service sets it, so in this test process
    # it depends on the order of the tests) the points read as one point; refused either way.
    with pytest.raises((SkeletonUnderflowError, SkeletonNoExtentError)):
        describe(x * 5e-320, DescriptorConfig())


def test_describe_batch() -> None:
    seqs = [_tiny(), _tiny()[:3], _tiny()[:7] * 2 + 1]
    out = describe_batch(seqs, DescriptorConfig())
    assert out.shape == (3, 5, 12) and out.dtype == np.float32
    np.testing.assert_array_equal(out[1], describe(seqs[1], DescriptorConfig()))
    bad = [*seqs, np.full((4, 5, 3), np.nan)]
    with pytest.raises(SkeletonError, match=r"sequence 3: .*NaN or Inf"):
        describe_batch(bad, DescriptorConfig())
    with pytest.raises(SkeletonError, match="sequence 0: expected 30 joints"):
        describe_batch(seqs, DescriptorConfig(), num_joints=30)
    with pytest.raises(SkeletonError, match="sequence 1: 4 joints"):
        describe_batch([_tiny(), _tiny()[:, :4]], DescriptorConfig())
    assert describe_batch([], DescriptorConfig(), num_joints=30).shape == (0, 30, 12)


# ----------------------------------------------------------------------------- synthetic


def _nearest_centroid_accuracy(ds: SkeletonDataset) -> float:
    feats = describe_batch(ds.sequences, DescriptorConfig()).reshape(len(ds), -1)
    train, test = ds.split(0)
    classes = np.unique(ds.labels)
    centroids = np.stack([feats[train][ds.labels[train] == c].mean(0) for c in classes])
    dist = ((feats[test][:, None, :] - centroids[None]) ** 2).sum(-1)
    return float(np.mean(classes[dist.argmin(1)] == ds.labels[test]))


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_synthetic(name: str) -> None:
    layout = get_layout(name)
    ds = make_synthetic(layout, num_classes=5, per_class=20, seed=3)
    assert len(ds) == 100 and ds.name == f"synthetic-{name}"
    assert ds.class_names == tuple(f"class_{c}" for c in range(5))
    assert ds.ids[7] == "synthetic/7"
    np.testing.assert_array_equal(ds.folds, np.arange(100) % 5)
    np.testing.assert_array_equal(np.bincount(ds.labels), [20] * 5)
    for s in ds.sequences:
        assert s.dtype == np.float32 and s.shape[1:] == (layout.num_joints, 3)
        assert 12 <= s.shape[0] <= 40 and np.isfinite(s).all()
    again = make_synthetic(layout, num_classes=5, per_class=20, seed=3)
    for a, b in zip(ds.sequences, again.sequences, strict=True):
        np.testing.assert_array_equal(a, b)
    other = make_synthetic(layout, num_classes=5, per_class=20, seed=4)
    assert not np.array_equal(ds.sequences[0], other.sequences[0])
    assert _nearest_centroid_accuracy(ds) > 0.9


@pytest.mark.parametrize(("name", "classes"), [("synthetic-sbu", 8), ("synthetic-fpha", 10)])
def test_load_dataset_synthetic(name: str, classes: int) -> None:
    ds = load_dataset(name)
    assert ds.name == name and len(ds.class_names) == classes and len(ds) == 30 * classes
    assert _nearest_centroid_accuracy(ds) > 0.9


def test_load_dataset_unknown() -> None:
    with pytest.raises(KeyError, match="known datasets"):
        load_dataset("ntu")


# ----------------------------------------------------------------------------- dataset / root


def test_split_and_subset() -> None:
    ds = make_synthetic(get_layout("fpha"), num_classes=2, per_class=10)
    train, test = ds.split(2)
    assert set(train).isdisjoint(test) and len(train) + len(test) == len(ds)
    assert np.all(ds.folds[test] == 2) and np.all(ds.folds[train] != 2)
    sub = ds.subset(test)
    assert len(sub) == len(test) and sub.ids == [ds.ids[i] for i in test]
    assert sub.layout is ds.layout and np.all(sub.folds == 2)
    with pytest.raises(ValueError, match="no fold 9"):
        ds.split(9)


def test_data_root(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    assert data_root(tmp_path) == tmp_path
    monkeypatch.setenv("MRMP_DATA_DIR", str(tmp_path))
    assert data_root() == tmp_path
    monkeypatch.delenv("MRMP_DATA_DIR")
    assert data_root().parts[-2:] == ("shared", "data")


def test_missing_data_folders(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="sbu_kinect_interaction"):
        load_sbu(tmp_path)
    with pytest.raises(FileNotFoundError, match="fpha"):
        load_fpha(tmp_path)


# ----------------------------------------------------------------------------- file parsers


def test_read_sbu_file_checks(tmp_path) -> None:
    row = ",".join(["0.5"] * 90)
    good = tmp_path / "good.txt"
    good.write_bytes(f"7,{row}\r\n8,{row}\r\n".encode())
    assert read_sbu_file(good).shape == (2, 30, 3)
    gap = tmp_path / "gap.txt"
    gap.write_bytes(f"7,{row}\r\n9,{row}\r\n".encode())
    with pytest.raises(ValueError, match=r"gap\.txt.*not contiguous"):
        read_sbu_file(gap)
    short = tmp_path / "short.txt"
    short.write_bytes(f"7,{row},1\r\n".encode())
    with pytest.raises(ValueError, match=r"short\.txt.*92 columns"):
        read_sbu_file(short)


def test_read_fpha_text_checks() -> None:
    row = " ".join(["1.5"] * 63)
    crlf = read_fpha_text(f"0000 {row}\r\n0001 {row}\r\n")
    assert crlf.shape == (2, 21, 3) and crlf.dtype == np.float32
    with pytest.raises(ValueError, match="row 2 has 63 values"):
        read_fpha_text(f"0000 {row}\n0001 {row[4:]}\n")
    with pytest.raises(ValueError, match="no frames"):
        read_fpha_text("")


# ----------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def sbu() -> SkeletonDataset:
    return load_sbu(data_root())


@pytest.fixture(scope="module")
def fpha() -> SkeletonDataset:
    return load_fpha(data_root())


@needs_sbu
def test_sbu_counts(sbu: SkeletonDataset) -> None:
    assert len(sbu) == 282 and sbu.name == "sbu"
    assert sbu.class_names == SBU_CLASSES and len(SBU_CLASSES) == 8
    assert np.bincount(sbu.labels).tolist() == [42, 43, 40, 41, 18, 21, 39, 38]
    assert np.bincount(sbu.folds).tolist() == [55, 52, 56, 54, 65]
    assert sum(len(f) for f in SBU_FOLDS) == 21
    assert sbu.ids == sorted(sbu.ids) and len(set(sbu.ids)) == 282
    for k in range(5):
        train, test = sbu.split(k)
        assert len(train) + len(test) == 282
        assert {sbu.ids[i].split("/")[0] for i in test} == set(SBU_FOLDS[k])


@needs_sbu
def test_sbu_values(sbu: SkeletonDataset) -> None:
    assert sbu.ids[0] == "s01s02/01/001"
    first = sbu.sequences[0]
    assert first.shape == (45, 30, 3)  # frames 55..99 of the recording
    # The file holds 0.21496, 0.32665, 1.7849: in the camera frame, millimetres (SOURCE.md).
    expected = [1280 - 2560 * 0.21496, 960 - 1920 * 0.32665, 1.7849 * 10000 / 7.8125]
    np.testing.assert_allclose(first[0, 0], expected, rtol=1e-6)
    lengths = [s.shape[0] for s in sbu.sequences]
    assert min(lengths) == 10 and max(lengths) == 46 and sum(lengths) == 6822
    for s in sbu.sequences:
        assert s.dtype == np.float32 and s.shape[1:] == (30, 3) and np.isfinite(s).all()
    d = describe_batch(sbu.sequences, DescriptorConfig(), num_joints=30)
    assert d.shape == (282, 30, 12) and np.isfinite(d).all()


@needs_sbu
def test_sbu_file_direct() -> None:
    path = data_root() / "sbu_kinect_interaction" / "s01s02" / "01" / "001" / "skeleton_pos.txt"
    assert read_sbu_file(path).shape == (45, 30, 3)


@needs_fpha
def test_fpha_counts(fpha: SkeletonDataset) -> None:
    assert len(fpha) == 1175 and fpha.name == "fpha"
    assert np.bincount(fpha.folds).tolist() == [600, 575]
    assert fpha.class_names == FPHA_CLASSES and len(FPHA_CLASSES) == 45
    assert np.bincount(fpha.labels, minlength=45).min() > 0
    assert fpha.ids[0] == "Subject_1/open_juice_bottle/2" and fpha.labels[0] == 0
    for seq_id, label in zip(fpha.ids, fpha.labels, strict=True):
        assert seq_id.split("/")[1] == FPHA_CLASSES[label]
    # The three empty archive files are not part of the split.
    empty = {"Subject_2/close_milk/4", "Subject_2/put_tea_bag/2", "Subject_4/flip_sponge/2"}
    assert empty.isdisjoint(fpha.ids)
    train = collections.Counter(fpha.labels[fpha.folds == 0].tolist())
    assert train[15] == 17 and train[34] == 11  # put_salt, charge_cell_phone


@needs_fpha
def test_fpha_values(fpha: SkeletonDataset) -> None:
    lengths = [s.shape[0] for s in fpha.sequences]
    assert min(lengths) == 7 and max(lengths) == 1151
    for s in fpha.sequences:
        assert s.dtype == np.float32 and s.shape[1:] == (21, 3) and np.isfinite(s).all()
    crlf = fpha.sequences[fpha.ids.index("Subject_5/use_flash/6")]
    assert crlf.shape[1:] == (21, 3) and crlf.shape[0] > 0
    d = describe_batch(fpha.sequences, DescriptorConfig(velocity=True), num_joints=21)
    assert d.shape == (1175, 21, 24) and np.isfinite(d).all()


@needs_fpha
def test_fpha_crlf_member_direct() -> None:
    member = "Hand_pose_annotation_v1/Subject_5/use_flash/6/skeleton.txt"
    with zipfile.ZipFile(data_root() / "fpha" / "Hand_pose_annotation_v1.zip") as zf:
        raw = zf.read(member)
    assert b"\r\n" in raw
    seq = read_fpha_text(raw.decode("ascii"))
    assert seq.shape == (raw.count(b"\n"), 21, 3)


def test_fpha_requested_empty_member_raises(tmp_path) -> None:
    # A tiny fake archive (no real data) whose split names an empty member.
    (tmp_path / "fpha").mkdir()
    member = "Hand_pose_annotation_v1/Subject_2/close_milk/4/skeleton.txt"
    with zipfile.ZipFile(tmp_path / "fpha" / "Hand_pose_annotation_v1.zip", "w") as zout:
        zout.writestr(member, b"")
    (tmp_path / "fpha" / "data_split_action_recognition.txt").write_text(
        "Training 1\nSubject_2/close_milk/4 11\nTest 0\n"
    )
    with pytest.raises(ValueError, match=r"Subject_2/close_milk/4.*empty"):
        load_fpha(tmp_path)
