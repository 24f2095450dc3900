"""Tests for the built-in skeleton layouts: the tools' published joint orders and connections,
each person's root, and the builder of multi-person layouts."""

from __future__ import annotations

from collections import deque
from dataclasses import replace

import numpy as np
import pytest

from mrmp.skeleton import DescriptorConfig, describe
from mrmp.skeleton.layouts import (
    FPHA_LAYOUT,
    LAYOUT_ALIASES,
    LAYOUTS,
    SBU_LAYOUT,
    CoordinateFrame,
    Layout,
    get_layout,
    repeat_persons,
)

TOOL_LAYOUTS = ("ntu25", "coco17", "openpose25", "openpose18", "mediapipe33")
_IMAGE = CoordinateFrame(up="-y", handedness="right", axes="x right, y down")


def _reachable(layout: Layout, start: int) -> set[int]:
    """The joints reachable from `start` along the layout's bones."""
    neighbours: dict[int, list[int]] = {j: [] for j in range(layout.num_joints)}
    for a, b in layout.bones:
        neighbours[a].append(b)
        neighbours[b].append(a)
    seen, queue = {start}, deque([start])
    while queue:
        for k in neighbours[queue.popleft()]:
            if k not in seen:
                seen.add(k)
                queue.append(k)
    return seen


# MediaPipe: its 35 connections and mrmp's 4 joining bones.
COUNTS = {"ntu25": (25, 24), "coco17": (17, 19), "openpose25": (25, 24), "openpose18": (18, 17)}
COUNTS["mediapipe33"] = (33, 35 + 4)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_documented_joint_and_bone_counts(name: str) -> None:
    layout = get_layout(name)
    joints, bones = COUNTS[name]
    assert layout.name == name and layout.persons == 1
    assert layout.num_joints == joints and len(layout.bones) == bones


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_layout_is_one_connected_skeleton_per_person(name: str) -> None:
    layout = LAYOUTS[name]
    assert layout.name == name
    assert len(set(layout.joint_names)) == layout.num_joints
    assert len({frozenset(b) for b in layout.bones}) == len(layout.bones)  # no bone twice
    per = layout.num_joints // layout.persons
    within = Layout(
        name=f"{name}-person",
        joint_names=layout.joint_names[:per],
        bones=tuple((a, b) for a, b in layout.bones if a < per and b < per),
        persons=1,
        frame=layout.frame,
    )
    start = layout.root if layout.root is not None else 0
    assert _reachable(within, start) == set(range(per)), "a joint no bone reaches"


@pytest.mark.parametrize("name", TOOL_LAYOUTS)
def test_tool_layouts_declare_a_root(name: str) -> None:
    layout = get_layout(name)
    assert layout.root is not None and layout.person_roots() == (layout.root,)


def test_roots_are_the_fields_usual_choice() -> None:
    roots = {
        name: get_layout(name).joint_names[get_layout(name).root or 0] for name in TOOL_LAYOUTS
    }
    assert roots == {
        "ntu25": "SpineBase",
        "coco17": "left_hip",
        "openpose25": "MidHip",
        "openpose18": "Neck",
        "mediapipe33": "LEFT_HIP",
    }


def test_joint_orders_match_the_official_numbering() -> None:
    ntu = get_layout("ntu25").joint_names
    # The NTU RGB+D paper numbers from 1: 1 base of spine, 4 head, 21 spine, 25 right thumb.
    assert (ntu[1 - 1], ntu[4 - 1], ntu[21 - 1], ntu[25 - 1]) == (
        "SpineBase",
        "Head",
        "SpineShoulder",
        "ThumbRight",
    )
    coco = get_layout("coco17").joint_names
    assert (coco[0], coco[5], coco[11], coco[16]) == (
        "nose",
        "left_shoulder",
        "left_hip",
        "right_ankle",
    )
    body25 = get_layout("openpose25").joint_names
    assert (body25[1], body25[8], body25[19], body25[24]) == ("Neck", "MidHip", "LBigToe", "RHeel")
    body18 = get_layout("openpose18").joint_names
    assert (body18[8], body18[11], body18[17]) == ("RHip", "LHip", "LEar")
    mediapipe = get_layout("mediapipe33").joint_names
    assert (mediapipe[0], mediapipe[23], mediapipe[24], mediapipe[32]) == (
        "NOSE",
        "LEFT_HIP",
        "RIGHT_HIP",
        "RIGHT_FOOT_INDEX",
    )


def _named(name: str) -> set[frozenset[str]]:
    layout = get_layout(name)
    return {frozenset(layout.joint_names[j] for j in bone) for bone in layout.bones}


def test_bones_spot_checked_by_name() -> None:
    # NTU's show_skeleton.m: the thumb hangs off the hand, the neck off the spine's top.
    assert {frozenset(("ThumbLeft", "HandLeft")), frozenset(("Neck", "SpineShoulder"))} <= _named(
        "ntu25"
    )
    assert frozenset(("ThumbLeft", "WristLeft")) not in _named("ntu25")
    # COCO's skeleton joins each ear to its shoulder and the hips to each other.
    assert {frozenset(("left_ear", "left_shoulder")), frozenset(("left_hip", "right_hip"))} <= (
        _named("coco17")
    )
    assert frozenset(("Neck", "MidHip")) in _named("openpose25")
    assert frozenset(("LAnkle", "LHeel")) in _named("openpose25")
    assert frozenset(("Neck", "RHip")) in _named("openpose18")
    assert frozenset(("MOUTH_LEFT", "MOUTH_RIGHT")) in _named("mediapipe33")


def test_frames_say_which_way_is_up() -> None:
    assert get_layout("ntu25").frame.up == "+y"  # Kinect v2 camera space
    for name in ("coco17", "openpose25", "openpose18", "mediapipe33"):
        frame = get_layout(name).frame
        assert frame.up == "-y" and "y down" in frame.axes
    for name in ("coco17", "openpose25", "openpose18"):
        assert "lifter" in get_layout(name).frame.axes  # 2D keypoints: the depth is not theirs


def test_alias_and_unknown_name() -> None:
    assert get_layout("kinect_v2") is get_layout("ntu25")
    assert set(LAYOUT_ALIASES.values()) <= set(LAYOUTS)
    with pytest.raises(KeyError, match=r"kinect_v2.*mediapipe33"):
        get_layout("kinect_v3")


def test_sbu_and_fpha_are_what_they_were() -> None:
    joints = (
        "HEAD", "NECK", "TORSO", "LEFT_SHOULDER", "LEFT_ELBOW", "LEFT_HAND", "RIGHT_SHOULDER",
        "RIGHT_ELBOW", "RIGHT_HAND", "LEFT_HIP", "LEFT_KNEE", "LEFT_FOOT", "RIGHT_HIP",
        "RIGHT_KNEE", "RIGHT_FOOT",
    )  # fmt: skip
    person = ((0, 1), (1, 2), (1, 3), (3, 4), (4, 5), (1, 6), (6, 7), (7, 8), (2, 9), (9, 10))
    person += ((10, 11), (2, 12), (12, 13), (13, 14))
    before = Layout(
        name="sbu",
        joint_names=tuple(f"{p}_{n}" for p in "AB" for n in joints),
        bones=person
        + tuple((a + 15, b + 15) for a, b in person)
        + tuple((i, i + 15) for i in range(15)),
        persons=2,
        frame=CoordinateFrame(
            up="+y",
            handedness="right",
            axes="millimetres from the sensor: x to the sensor's left, y up, z away from the "
            "sensor",
        ),
        root=2,
    )
    # The joints, bones and frame the shipped model and the results were made with; the roots
    # are the ones their protocols describe each person about (configs/*.toml's root_joint).
    assert before == SBU_LAYOUT and SBU_LAYOUT.person_roots() == (2, 17)
    assert FPHA_LAYOUT.root == 0 and FPHA_LAYOUT.num_joints == 21


def test_repeat_persons_builds_blocks_of_one_person() -> None:
    ntu = get_layout("ntu25")
    two = repeat_persons(ntu, 2)
    assert two.name == "ntu25x2" and two.persons == 2 and two.num_joints == 50
    assert two.joint_names[0] == "A_SpineBase" and two.joint_names[28] == "B_Head"
    assert len(two.bones) == 2 * len(ntu.bones)
    assert all(a // 25 == b // 25 for a, b in two.bones)  # no link between persons by default
    assert two.person_roots() == (0, 25)
    assert two.frame == ntu.frame
    np.testing.assert_array_equal(two.adjacency()[25:, 25:], ntu.adjacency())

    linked = repeat_persons(get_layout("coco17"), 3, link_persons=True, name="three")
    assert linked.name == "three" and linked.person_roots() == (11, 28, 45)
    links = [b for b in linked.bones if b[0] // 17 != b[1] // 17]
    assert links == [(j, j + 17) for j in range(17)] + [(j + 17, j + 34) for j in range(17)]
    assert repeat_persons(ntu, 1) is ntu


def test_repeat_persons_refusals() -> None:
    with pytest.raises(ValueError, match="'sbu' has 2 persons, not one"):
        repeat_persons(SBU_LAYOUT, 2)
    with pytest.raises(ValueError, match="persons must be 1 to 26, got 0"):
        repeat_persons(get_layout("coco17"), 0)
    with pytest.raises(ValueError, match="declares no root"):
        replace(SBU_LAYOUT, root=None).person_roots()
    with pytest.raises(ValueError, match="root 17 is not among a person's 17 joints"):
        Layout("x", get_layout("coco17").joint_names, (), 1, _IMAGE, root=17)


def test_person_roots_drive_the_descriptor() -> None:
    layout = repeat_persons(get_layout("openpose25"), 2)
    config = DescriptorConfig(chunks=2, root_joint=layout.person_roots())
    config.check_joints(layout.num_joints)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(8, 25, 3))
    # Person B does what A does, a metre and a half to the side.
    x = np.concatenate([a, a + np.array([1.5, 0.0, 0.0])], axis=1).astype(np.float32)
    rel = describe(x, config)[:, 3 * config.chunks :]  # each joint about its own person's root
    np.testing.assert_allclose(rel[25:], rel[:25], atol=1e-5)
    np.testing.assert_array_equal(rel[[8, 33]], 0.0)  # each MidHip about itself
