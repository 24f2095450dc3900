"""The missing-detection rule (mrmp/skeleton/missing.py), one test per numbered rule of its
docstring, on the SBU layout (two persons of 15 joints, bones within and between persons)."""

from __future__ import annotations

import numpy as np
import pytest

from mrmp.skeleton import SBU_LAYOUT
from mrmp.skeleton.missing import MissingReport, NoSkeletonError, fill_missing, missing_mask

J, PERSONS, BONES = SBU_LAYOUT.num_joints, SBU_LAYOUT.persons, SBU_LAYOUT.bones
NAMES = SBU_LAYOUT.joint_names


def _joint(name: str) -> int:
    return NAMES.index(name)


def _skeleton(frames: int = 8, seed: int = 0) -> np.ndarray:
    """A (T, 30, 3) sequence with every joint observed (no coordinate exactly 0)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(100.0, 2000.0, size=(frames, J, 3))


def _fill(x: np.ndarray, nan_is_missing: bool = False) -> tuple[np.ndarray, MissingReport]:
    return fill_missing(x, PERSONS, BONES, nan_is_missing)


def test_a_complete_sequence_is_returned_as_it_is():
    x = _skeleton()
    x[2, 4, 1] = 0.0  # one coordinate at 0 is a real position, not a missing joint
    filled, report = _fill(x)
    assert filled is x and report == MissingReport(frames=8) and report.complete


def test_rule_1_a_joint_is_missing_when_all_three_coordinates_are_exactly_zero():
    x = _skeleton(frames=3)
    x[0, 5] = 0.0
    x[1, 6] = (0.0, 0.0, 1e-9)  # near the origin is not at it
    x[2, 7] = (np.nan, 1.0, 2.0)
    mask = missing_mask(x)
    assert np.argwhere(mask).tolist() == [[0, 5]]
    assert np.argwhere(missing_mask(x, nan_is_missing=True)).tolist() == [[0, 5], [2, 7]]
    # -0.0 == 0: a tracker's negative zero is missing too.
    x[1, 6] = (-0.0, 0.0, -0.0)
    assert missing_mask(x)[1, 6]


def test_rule_2_frames_with_no_joint_observed_are_dropped():
    x = _skeleton(frames=9)
    x[::3] = 0.0  # every third frame: 0, 3, 6
    filled, report = _fill(x)
    assert report.dropped_frames == (0, 3, 6) and report.frames == 9
    np.testing.assert_array_equal(filled, x[[1, 2, 4, 5, 7, 8]])
    assert not (report.absent_joints or report.partial_joints or report.absent_persons)


def test_rule_3_gaps_are_interpolated_exactly_on_a_linear_trajectory_and_held_at_the_ends():
    x = _skeleton(frames=10)
    t = np.arange(10)[:, None]
    elbow = _joint("A_LEFT_ELBOW")
    x[:, elbow] = np.array([100.0, 200.0, 300.0]) + t * np.array([5.0, -3.0, 2.5])
    truth = x.copy()
    x[[0, 1, 4, 5, 6, 9], elbow] = 0.0  # missing before, between and after observations
    filled, report = _fill(x)
    assert report.partial_joints == (elbow,) and report.absent_joints == ()
    np.testing.assert_allclose(filled[2:9, elbow], truth[2:9, elbow], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(filled[[0, 1], elbow], truth[[2, 2], elbow])  # held first
    np.testing.assert_array_equal(filled[9, elbow], truth[8, elbow])  # held last
    others = [j for j in range(J) if j != elbow]
    np.testing.assert_array_equal(filled[:, others], truth[:, others])


def test_rule_4_a_joint_never_seen_takes_its_nearest_observed_joint_along_its_persons_bones():
    x = _skeleton()
    hand, elbow, shoulder = (_joint(f"A_LEFT_{n}") for n in ("HAND", "ELBOW", "SHOULDER"))
    x[:, hand] = 0.0
    filled, report = _fill(x)
    assert report.absent_joints == (hand,) and report.absent_persons == ()
    np.testing.assert_array_equal(filled[:, hand], x[:, elbow])  # a missing hand at its elbow
    # Hand and elbow missing: both at the shoulder, not at B's hand (a link between persons).
    x[:, elbow] = 0.0
    filled, report = _fill(x)
    assert report.absent_joints == (elbow, hand)
    np.testing.assert_array_equal(filled[:, hand], x[:, shoulder])
    np.testing.assert_array_equal(filled[:, elbow], x[:, shoulder])


def test_rule_4_ties_go_to_the_lowest_index_and_unconnected_joints_to_the_persons_first():
    x = _skeleton()
    neck = _joint("B_NECK")  # head, torso and both shoulders are one bone away
    x[:, neck] = 0.0
    filled, _ = _fill(x)
    np.testing.assert_array_equal(filled[:, neck], x[:, _joint("B_HEAD")])
    # With no bones at all, the lowest observed joint of the same person.
    x = _skeleton()
    x[:, [15, 16, 20]] = 0.0
    filled, report = fill_missing(x, PERSONS, [])
    assert report.absent_joints == (15, 16, 20)
    for j in (15, 16, 20):
        np.testing.assert_array_equal(filled[:, j], x[:, 17])


def test_rule_5_a_person_never_seen_collapses_onto_the_observed_joints_mean():
    x = _skeleton()
    x[:, 15:] = 0.0  # person B left the view
    x[3, 2] = 0.0  # and A's torso is missing in one frame
    filled, report = _fill(x)
    assert report.absent_persons == (1,) and report.absent_joints == tuple(range(15, 30))
    assert report.partial_joints == (2,)
    mean = filled[:, :15].mean(axis=1)  # A's joints, A's torso interpolated first
    for j in range(15, 30):
        np.testing.assert_allclose(filled[:, j], mean, rtol=1e-12)
    np.testing.assert_allclose(filled[3, 2], (x[2, 2] + x[4, 2]) / 2)


def test_no_joint_observed_is_no_skeleton():
    with pytest.raises(NoSkeletonError, match=r"no skeleton: every joint of all 4 frame\(s\)"):
        _fill(np.zeros((4, J, 3)))
    x = np.full((2, J, 3), np.nan)
    x[1] = 0.0
    with pytest.raises(NoSkeletonError, match="NaN"):
        _fill(x, nan_is_missing=True)


def test_nan_is_missing_only_when_asked():
    x = _skeleton(frames=5)
    x[2, 9, 0] = np.nan
    same, report = _fill(x)
    assert same is x and report.complete  # left for the descriptor to refuse
    filled, report = _fill(x, nan_is_missing=True)
    assert report.partial_joints == (9,) and np.isfinite(filled).all()
    np.testing.assert_allclose(filled[2, 9], (x[1, 9] + x[3, 9]) / 2)


def test_the_report_and_the_filled_sequence_are_float64_of_the_kept_frames():
    x = _skeleton(frames=6).astype(np.float32)
    x[1] = 0.0
    x[:, 0] = 0.0
    filled, report = _fill(x)
    assert filled.dtype == np.float64 and filled.shape == (5, J, 3)
    assert report == MissingReport(6, dropped_frames=(1,), absent_joints=(0,))
    assert not report.complete
