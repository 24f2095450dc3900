"""Augmentation acts on descriptors exactly as it would on the skeletons."""

import math

import numpy as np
import pytest
import torch

from mrmp.skeleton import FPHA_LAYOUT, SBU_LAYOUT, DescriptorConfig, describe
from training.augment import AugmentConfig, crop_views, make_augment, person_swap, rotations
from training.datasets import make_synthetic


def test_person_swap_exchanges_matching_joints():
    perm = person_swap(SBU_LAYOUT).tolist()
    assert sorted(perm) == list(range(30))
    names = SBU_LAYOUT.joint_names
    for j, k in enumerate(perm):
        assert names[j][2:] == names[k][2:] and names[j][0] != names[k][0]


def _sequences():
    ds = make_synthetic(SBU_LAYOUT, num_classes=2, per_class=2, seed=0)
    return ds.sequences


@pytest.mark.parametrize("roots", [None, (2, 17)])
def test_swap_on_descriptors_equals_describing_swapped_skeletons(roots):
    cfg = DescriptorConfig(velocity=True, root_joint=roots)
    perm = person_swap(SBU_LAYOUT).numpy()
    for seq in _sequences():
        swapped = describe(seq[:, perm], cfg)
        np.testing.assert_allclose(describe(seq, cfg)[perm], swapped, atol=1e-6)
    config = AugmentConfig(swap_persons=True)
    assert make_augment(config, SBU_LAYOUT, cfg) is not None


def test_rotation_on_descriptors_equals_describing_rotated_skeletons():
    cfg = DescriptorConfig(chunks=3, velocity=True)
    seqs = _sequences()
    x = torch.from_numpy(np.stack([describe(s, cfg) for s in seqs]))
    augment = make_augment(AugmentConfig(rotate_degrees=40), SBU_LAYOUT)
    gen = torch.Generator().manual_seed(3)
    out = augment(x, gen)
    same_draws = torch.Generator().manual_seed(3)
    theta = (torch.rand(len(seqs), generator=same_draws) * 2 - 1) * np.radians(40)
    for s, t, got in zip(seqs, theta.tolist(), out, strict=True):
        c, si = np.cos(t), np.sin(t)
        rot = np.array([[c, 0, -si], [0, 1, 0], [si, 0, c]])  # about y, the vertical axis
        np.testing.assert_allclose(describe(s @ rot.T, cfg), got.numpy(), atol=1e-5)


def test_all_axes_rotation_with_local_frame_equals_describing_rotated_skeletons():
    # The positional blocks turn with the skeleton; the local-frame block, last, does not.
    cfg = DescriptorConfig(chunks=3, root_joint=0, local_frame=(0, 1, 2))
    seqs = _sequences()
    x = torch.from_numpy(np.stack([describe(s, cfg) for s in seqs]))
    config = AugmentConfig(rotate_degrees=60, all_axes=True)
    augment = make_augment(config, SBU_LAYOUT, cfg)
    out = augment(x, torch.Generator().manual_seed(5))
    rot = rotations([0, 1, 2], np.radians(60), len(seqs), torch.Generator().manual_seed(5))
    assert not torch.allclose(rot[0], rot[1])
    for s, r, got in zip(seqs, rot.numpy(), out, strict=True):
        np.testing.assert_allclose(describe(s @ r.T, cfg), got.numpy(), atol=1e-5)


def test_swap_is_refused_with_blocks_measured_from_given_joints():
    swap = AugmentConfig(swap_persons=True)
    refused = (
        DescriptorConfig(root_joint=0),
        DescriptorConfig(root_joint=(2, 18)),  # not the same joint of each person
        DescriptorConfig(local_frame=(0, 1, 2)),
    )
    for cfg in refused:
        with pytest.raises(ValueError, match="swap_persons"):
            make_augment(swap, SBU_LAYOUT, cfg)
    assert make_augment(swap, SBU_LAYOUT, DescriptorConfig(velocity=True)) is not None


def test_axis_scale_is_applied_before_normalizing():
    seq = _sequences()[0]
    scale = (-2560.0, -1920.0, 1280.0)
    np.testing.assert_allclose(
        describe(seq, DescriptorConfig(axis_scale=scale)),
        describe(seq * np.array(scale), DescriptorConfig()),
        atol=1e-5,
    )
    assert DescriptorConfig.from_dict({"axis_scale": [1, 2, 3]}).axis_scale == (1.0, 2.0, 3.0)


def test_no_augmentation_is_none():
    assert make_augment(AugmentConfig(), SBU_LAYOUT) is None


def _window_of(view: np.ndarray, seq: np.ndarray, cfg: DescriptorConfig, min_len: int) -> int:
    """The length of the contiguous window of `seq` whose descriptor is `view` (0: none)."""
    t = len(seq)
    for length in range(t, min_len - 1, -1):
        for start in range(t - length + 1):
            if np.allclose(describe(seq[start : start + length], cfg), view, atol=1e-5):
                return length
    return 0


def test_crop_views_are_the_whole_sequence_then_contiguous_crops():
    cfg = DescriptorConfig(chunks=3, velocity=True)
    seqs = _sequences()
    views = crop_views(seqs, cfg, SBU_LAYOUT.num_joints, views=3, crop_min=0.5, seed=1)
    assert views.shape == (3, len(seqs), SBU_LAYOUT.num_joints, cfg.feature_dim())
    np.testing.assert_array_equal(views[0].numpy(), np.stack([describe(s, cfg) for s in seqs]))
    lengths = []
    for v in (1, 2):
        for i, seq in enumerate(seqs):
            length = _window_of(views[v, i].numpy(), seq, cfg, math.ceil(0.5 * len(seq)))
            assert length, f"view {v} of sequence {i} is no window of >= half its frames"
            lengths.append(length / len(seq))
    assert min(lengths) < 1.0  # some views are real crops
    again = crop_views(seqs, cfg, SBU_LAYOUT.num_joints, views=3, crop_min=0.5, seed=1)
    torch.testing.assert_close(views, again)
    other = crop_views(seqs, cfg, SBU_LAYOUT.num_joints, views=3, crop_min=0.5, seed=2)
    assert not torch.equal(views[1:], other[1:])


def test_crop_views_with_crop_min_one_are_the_whole_sequence():
    cfg = DescriptorConfig()
    seqs = _sequences()
    views = crop_views(seqs, cfg, SBU_LAYOUT.num_joints, views=4, crop_min=1.0, seed=0)
    for v in range(1, 4):
        torch.testing.assert_close(views[v], views[0])


# Missing-detection views: what each corruption removes, and that the described view is the
# sequence without it, made whole by the serving rule.


def test_limbs_are_the_chains_from_each_end_joint_to_the_body():
    from training.augment import limbs

    sbu = limbs(SBU_LAYOUT)
    names = SBU_LAYOUT.joint_names
    arm = ("A_LEFT_HAND", "A_LEFT_ELBOW", "A_LEFT_SHOULDER")
    assert tuple(names.index(n) for n in arm) in sbu
    leg = ("B_RIGHT_FOOT", "B_RIGHT_KNEE", "B_RIGHT_HIP")
    assert tuple(names.index(n) for n in leg) in sbu
    assert len(sbu) == 10  # head, two arms, two legs, per person
    assert all(len({j // 15 for j in limb}) == 1 for limb in sbu)  # never across persons
    fingers = limbs(FPHA_LAYOUT)
    assert sorted(fingers) == sorted(
        tuple(FPHA_LAYOUT.joint_names.index(f"{f}{k}") for k in ("TIP", "DIP", "PIP", "MCP"))
        for f in "TIMRP"
    )


def test_without_zeroes_exactly_the_given_frames_and_joints():
    from training.augment import without

    seq = _sequences()[0]
    out = without(seq, frames=[1, 3], joints=[0, 5])
    zero = (out == 0).all(axis=-1)
    assert zero[np.ix_([1, 3], [0, 5])].all() and zero.sum() == 4
    assert (without(seq, joints=[2]) == 0).all(axis=-1).sum() == len(seq)
    assert (seq != 0).all()  # a copy: the input is left as it was


def test_every_kth_frame():
    from training.augment import every_kth

    assert every_kth(9, 3).tolist() == [2, 5, 8]
    assert every_kth(5, 2).tolist() == [1, 3]
    with pytest.raises(ValueError, match="k must be >= 2"):
        every_kth(5, 1)


def test_a_dropped_frame_is_absent_from_the_described_sequence():
    from training.augment import describe_observed, every_kth, without

    cfg = DescriptorConfig(velocity=True, root_joint=(2, 17))
    for seq in _sequences():
        dropped = every_kth(len(seq), 3)
        kept = np.setdiff1d(np.arange(len(seq)), dropped)
        np.testing.assert_allclose(
            describe_observed(without(seq, frames=dropped), SBU_LAYOUT, cfg),
            describe(seq[kept], cfg),
            rtol=1e-5,
            atol=1e-6,
        )


def test_an_absent_person_or_limb_is_described_as_the_rule_fills_it():
    from training.augment import describe_observed, person_joints, without

    cfg = DescriptorConfig(velocity=True)
    seq = _sequences()[0].astype(np.float64)
    b = person_joints(SBU_LAYOUT, 1)
    assert b.tolist() == list(range(15, 30))
    # Person B collapses onto the mean of person A's joints, frame by frame.
    filled = seq.copy()
    filled[:, b] = seq[:, :15].mean(axis=1, keepdims=True)
    np.testing.assert_allclose(
        describe_observed(without(seq, joints=b), SBU_LAYOUT, cfg), describe(filled, cfg), atol=1e-5
    )
    # A's left arm (hand, elbow, shoulder) sits at the neck, its nearest observed joint.
    arm = [5, 4, 3]
    filled = seq.copy()
    filled[:, arm] = seq[:, [1]]
    np.testing.assert_allclose(
        describe_observed(without(seq, joints=arm), SBU_LAYOUT, cfg),
        describe(filled, cfg),
        atol=1e-5,
    )


@pytest.mark.parametrize("layout", [SBU_LAYOUT, FPHA_LAYOUT])
def test_each_random_corruption_removes_what_its_kind_says(layout):
    from training.augment import MAX_JOINTS_LOST, corrupt_at_random, limbs

    ds = make_synthetic(layout, num_classes=2, per_class=3, seed=1)
    rng = np.random.default_rng(0)
    per = layout.num_joints // layout.persons
    kinds = set()
    for _ in range(20):
        for seq in ds.sequences:
            kind, out = corrupt_at_random(seq, layout, rng)
            kinds.add(kind)
            lost = (out == 0).all(axis=-1)
            assert (out[~lost] == seq[~lost]).all()  # nothing else moved
            frames, joints = lost.all(axis=1), lost.all(axis=0)
            if kind == "frames":
                assert lost.sum() == frames.sum() * layout.num_joints  # whole frames only
                assert 0 <= frames.sum() <= len(seq) // 2 + 1 and not frames.all()
            elif kind == "person":
                assert lost.sum() == len(seq) * per
                assert any(joints[p * per : (p + 1) * per].all() for p in range(layout.persons))
            elif kind == "limb":
                assert tuple(np.flatnonzero(joints)) in {tuple(sorted(li)) for li in limbs(layout)}
                assert lost.sum() == joints.sum() * len(seq)
            else:
                assert kind == "joints"
                assert (~lost).sum() > 0 and lost.mean() <= MAX_JOINTS_LOST + 1e-9
    assert kinds == (
        {"frames", "person", "limb", "joints"}
        if layout.persons > 1
        else {"frames", "limb", "joints"}
    )


def test_missing_views_follow_the_whole_and_crop_views_and_are_drawn_from_the_seed():
    from training.augment import missing_views, training_views
    from training.train import TrainConfig

    seqs = _sequences()
    cfg = DescriptorConfig(chunks=3)
    views = training_views(seqs, SBU_LAYOUT, cfg, TrainConfig(missing_views=3))
    assert views.shape == (4, len(seqs), 30, 9)
    np.testing.assert_array_equal(views[0].numpy(), np.stack([describe(s, cfg) for s in seqs]))
    with_crops = training_views(
        seqs, SBU_LAYOUT, cfg, TrainConfig(missing_views=3, temporal_crops=2)
    )
    assert with_crops.shape[0] == 5
    torch.testing.assert_close(with_crops[2:], views[1:])  # the same missing views after the crop
    again = missing_views(seqs, SBU_LAYOUT, cfg, 3, seed=0)
    torch.testing.assert_close(again, views[1:])
    other = missing_views(seqs, SBU_LAYOUT, cfg, 3, seed=1)
    assert not torch.equal(other, again)
    # Off by default: no views beyond the whole sequence.
    assert training_views(seqs, SBU_LAYOUT, cfg, TrainConfig()).shape[0] == 1
    with pytest.raises(ValueError, match="missing_views must be >= 0"):
        TrainConfig(missing_views=-1)


def test_a_run_without_missing_views_records_the_settings_of_runs_before_the_option():
    from training.train import TrainConfig

    assert "missing_views" not in TrainConfig().to_dict()
    assert TrainConfig(missing_views=2).to_dict()["missing_views"] == 2
