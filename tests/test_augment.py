"""Augmentation acts on descriptors exactly as it would on the skeletons."""

import math

import numpy as np
import pytest
import torch

from mrmp.skeleton import SBU_LAYOUT, DescriptorConfig, describe
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
