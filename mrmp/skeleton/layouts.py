"""Skeleton layouts: joint names, the bone graph, the coordinate frame and each person's root
joint of the datasets and skeleton tools the registry knows (docs/layouts.md)."""

from __future__ import annotations

from dataclasses import dataclass
from string import ascii_uppercase
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from . import tool_skeletons as tools

Axis = Literal["+x", "-x", "+y", "-y", "+z", "-z"]


class CoordinateFrame(BaseModel):
    """The sensor's frame a layout's coordinates are given in: which axis points up, the
    handedness, and the axes in words. Only directions matter: the descriptor is invariant to
    translation and to a uniform change of unit, not to a flip or swap of axes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    up: Axis
    handedness: Literal["right", "left"]
    axes: str = Field(min_length=1)


@dataclass(frozen=True)
class Layout:
    """Joints (in file order), undirected bones (0-based joint index pairs) and the coordinate
    frame of a skeleton of `persons` equal blocks of joints; `root`, when given, is the root
    joint of every person as an index within one person's block (None: none declared)."""

    name: str
    joint_names: tuple[str, ...]
    bones: tuple[tuple[int, int], ...]
    persons: int
    frame: CoordinateFrame
    root: int | None = None

    def __post_init__(self) -> None:
        j = len(self.joint_names)
        for a, b in self.bones:
            if not (0 <= a < j and 0 <= b < j) or a == b:
                raise ValueError(f"layout {self.name!r}: invalid bone ({a}, {b}) for {j} joints")
        if self.persons < 1 or j % self.persons:
            raise ValueError(f"layout {self.name!r}: {j} joints do not split into {self.persons}")
        if self.root is not None and not 0 <= self.root < j // self.persons:
            raise ValueError(
                f"layout {self.name!r}: root {self.root} is not among a person's "
                f"{j // self.persons} joints"
            )

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def person_roots(self) -> tuple[int, ...]:
        """Each person's root as an index among all joints, one per person: the form of
        DescriptorConfig's root_joint. ValueError when the layout declares no root."""
        if self.root is None:
            raise ValueError(f"layout {self.name!r} declares no root joint")
        per = self.num_joints // self.persons
        return tuple(p * per + self.root for p in range(self.persons))

    def adjacency(self) -> np.ndarray:
        """(J, J) float32 symmetric 0/1 bone adjacency, no self loops."""
        j = self.num_joints
        adj = np.zeros((j, j), dtype=np.float32)
        if self.bones:
            idx = np.asarray(self.bones, dtype=np.int64)
            adj[idx[:, 0], idx[:, 1]] = 1.0
            adj[idx[:, 1], idx[:, 0]] = 1.0
        return adj


def repeat_persons(
    person: Layout, persons: int, *, link_persons: bool = False, name: str | None = None
) -> Layout:
    """The `persons`-person version of a one-person layout: its joints repeated person after
    person, each joint name prefixed with the person's letter ("A_", "B_", ...), its bones
    within each person, and with `link_persons` a bone between each joint and the same joint
    of the next person (SBU's inter-person links). One person is `person` itself; `name`
    defaults to "<name>x<persons>". ValueError for a multi-person `person` or a count outside
    1..26."""
    if person.persons != 1:
        raise ValueError(f"layout {person.name!r} has {person.persons} persons, not one")
    if not 1 <= persons <= len(ascii_uppercase):
        raise ValueError(f"persons must be 1 to {len(ascii_uppercase)}, got {persons}")
    if persons == 1:
        return person
    per = person.num_joints
    links = tuple((j + p * per, j + (p + 1) * per) for p in range(persons - 1) for j in range(per))
    return Layout(
        name=name if name is not None else f"{person.name}x{persons}",
        joint_names=tuple(
            f"{ascii_uppercase[p]}_{n}" for p in range(persons) for n in person.joint_names
        ),
        bones=tuple((a + p * per, b + p * per) for p in range(persons) for a, b in person.bones)
        + (links if link_persons else ()),
        persons=persons,
        frame=person.frame,
        root=person.root,
    )


# SBU: 15 OpenNI joints per person, file order (SOURCE.md, 1-based there).
_SBU_PERSON_JOINTS = (
    "HEAD",
    "NECK",
    "TORSO",
    "LEFT_SHOULDER",
    "LEFT_ELBOW",
    "LEFT_HAND",
    "RIGHT_SHOULDER",
    "RIGHT_ELBOW",
    "RIGHT_HAND",
    "LEFT_HIP",
    "LEFT_KNEE",
    "LEFT_FOOT",
    "RIGHT_HIP",
    "RIGHT_KNEE",
    "RIGHT_FOOT",
)
_SBU_PERSON_BONES = (
    (0, 1),  # head - neck
    (1, 2),  # neck - torso
    (1, 3),  # neck - left shoulder
    (3, 4),
    (4, 5),
    (1, 6),  # neck - right shoulder
    (6, 7),
    (7, 8),
    (2, 9),  # torso - left hip
    (9, 10),
    (10, 11),
    (2, 12),  # torso - right hip
    (12, 13),
    (13, 14),
)

# Two persons, inter-person links between matching joints of A and B.
SBU_LAYOUT = repeat_persons(
    Layout(
        name="sbu",
        joint_names=_SBU_PERSON_JOINTS,
        bones=_SBU_PERSON_BONES,
        persons=1,
        # The Kinect/OpenNI real-world frame the reader converts the files to (SOURCE.md's
        # formula): head above feet along +y in 99.98% of frames; (right - left shoulder) x
        # (neck - torso) points away from the partner for 91% of persons: right-handed.
        frame=CoordinateFrame(
            up="+y",
            handedness="right",
            axes="millimetres from the sensor: x to the sensor's left, y up, z away from the "
            "sensor",
        ),
        root=_SBU_PERSON_JOINTS.index("TORSO"),  # configs/sbu.toml's root_joint
    ),
    2,
    link_persons=True,
    name="sbu",
)

# FPHA: file order is wrist, the five MCPs, then each finger's PIP, DIP, TIP (SOURCE.md).
_FPHA_FINGERS = ("T", "I", "M", "R", "P")
_FPHA_JOINTS = (
    "Wrist",
    *(f"{f}MCP" for f in _FPHA_FINGERS),
    *(f"{f}{k}" for f in _FPHA_FINGERS for k in ("PIP", "DIP", "TIP")),
)
_FPHA_BONES = tuple((0, 1 + f) for f in range(5)) + tuple(
    bone
    for f in range(5)
    for bone in ((1 + f, 6 + 3 * f), (6 + 3 * f, 7 + 3 * f), (7 + 3 * f, 8 + 3 * f))
)

FPHA_LAYOUT = Layout(
    name="fpha",
    joint_names=_FPHA_JOINTS,
    bones=_FPHA_BONES,
    persons=1,
    # The depth camera's frame (SOURCE.md: it projects with the depth intrinsics).
    frame=CoordinateFrame(
        up="-y",
        handedness="right",
        axes="millimetres from the depth camera: x right in the image, y down, z away from "
        "the camera",
    ),
    root=0,  # the wrist, the palm frame's origin in configs/fpha.toml
)


def _one_person(
    name: str,
    joints: tuple[str, ...],
    bones: tuple[tuple[int, int], ...],
    frame: CoordinateFrame,
    root: str,
) -> Layout:
    """A one-person layout whose root is the joint named `root`."""
    return Layout(name, joints, bones, persons=1, frame=frame, root=joints.index(root))


# Kinect v2 camera space, in which NTU RGB+D's .skeleton files give x, y, z; the Kinect SDK's
# skeleton hierarchy starts at SpineBase.
NTU25_LAYOUT = _one_person(
    "ntu25",
    tools.NTU25_JOINTS,
    tools.NTU25_BONES,
    CoordinateFrame(
        up="+y",
        handedness="right",
        axes="metres from the sensor: x to the sensor's left, y up, z away from the sensor",
    ),
    root="SpineBase",
)

# COCO and OpenPose detect 2D keypoints in the image; a third coordinate comes from whatever
# lifts them to 3D (OpenPose's --3d: the calibrated camera's frame).
_IMAGE_FRAME = CoordinateFrame(
    up="-y",
    handedness="right",
    axes="image pixels: x right, y down; the third coordinate is whatever the pose lifter gives, "
    "taken as depth away from the camera (right-handed)",
)

# No pelvis or neck keypoint in COCO: the left hip stands in for the pelvis.
COCO17_LAYOUT = _one_person(
    "coco17", tools.COCO17_JOINTS, tools.COCO17_BONES, _IMAGE_FRAME, root="left_hip"
)
OPENPOSE25_LAYOUT = _one_person(
    "openpose25", tools.OPENPOSE25_JOINTS, tools.OPENPOSE25_BONES, _IMAGE_FRAME, root="MidHip"
)
# No hip centre in OpenPose's COCO model: the neck, from which its every limb pair starts.
OPENPOSE18_LAYOUT = _one_person(
    "openpose18", tools.OPENPOSE18_JOINTS, tools.OPENPOSE18_BONES, _IMAGE_FRAME, root="Neck"
)

# MediaPipe's connections leave the mouth and the face unconnected to the body; the missing-joint
# fill and the graph need one tree per person, so each mouth corner joins the nose and the nose
# both shoulders (mrmp's bones, not MediaPipe's). The hips' centre, MediaPipe's world origin, is
# no landmark: the left hip stands in as the root.
_MEDIAPIPE33_JOINING_BONES = tuple(
    (tools.MEDIAPIPE33_JOINTS.index("NOSE"), tools.MEDIAPIPE33_JOINTS.index(joint))
    for joint in ("MOUTH_LEFT", "MOUTH_RIGHT", "LEFT_SHOULDER", "RIGHT_SHOULDER")
)
MEDIAPIPE33_LAYOUT = _one_person(
    "mediapipe33",
    tools.MEDIAPIPE33_JOINTS,
    tools.MEDIAPIPE33_CONNECTIONS + _MEDIAPIPE33_JOINING_BONES,
    CoordinateFrame(
        up="-y",
        handedness="right",
        axes="x right, y down in the image (landmarks: fractions of the image's width and "
        "height; world landmarks: metres about the hips' centre), z depth away from the camera",
    ),
    root="LEFT_HIP",
)

LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        SBU_LAYOUT,
        FPHA_LAYOUT,
        NTU25_LAYOUT,
        COCO17_LAYOUT,
        OPENPOSE25_LAYOUT,
        OPENPOSE18_LAYOUT,
        MEDIAPIPE33_LAYOUT,
    )
}

# Other names users know a layout by.
LAYOUT_ALIASES: dict[str, str] = {"kinect_v2": "ntu25"}


def get_layout(name: str) -> Layout:
    """Look up a layout by name or alias; KeyError lists the known names."""
    try:
        return LAYOUTS[LAYOUT_ALIASES.get(name, name)]
    except KeyError:
        known = ", ".join(sorted([*LAYOUTS, *LAYOUT_ALIASES]))
        raise KeyError(f"unknown skeleton layout {name!r}; known layouts: {known}") from None
