"""Skeleton layouts: joint names, the bone graph and the coordinate frame of each supported
dataset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

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
    frame of a skeleton of `persons` equal blocks of joints."""

    name: str
    joint_names: tuple[str, ...]
    bones: tuple[tuple[int, int], ...]
    persons: int
    frame: CoordinateFrame

    def __post_init__(self) -> None:
        j = len(self.joint_names)
        for a, b in self.bones:
            if not (0 <= a < j and 0 <= b < j) or a == b:
                raise ValueError(f"layout {self.name!r}: invalid bone ({a}, {b}) for {j} joints")
        if self.persons < 1 or j % self.persons:
            raise ValueError(f"layout {self.name!r}: {j} joints do not split into {self.persons}")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def adjacency(self) -> np.ndarray:
        """(J, J) float32 symmetric 0/1 bone adjacency, no self loops."""
        j = self.num_joints
        adj = np.zeros((j, j), dtype=np.float32)
        if self.bones:
            idx = np.asarray(self.bones, dtype=np.int64)
            adj[idx[:, 0], idx[:, 1]] = 1.0
            adj[idx[:, 1], idx[:, 0]] = 1.0
        return adj


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
_N_SBU = len(_SBU_PERSON_JOINTS)

SBU_LAYOUT = Layout(
    name="sbu",
    joint_names=tuple(f"{p}_{n}" for p in ("A", "B") for n in _SBU_PERSON_JOINTS),
    bones=(
        _SBU_PERSON_BONES
        + tuple((a + _N_SBU, b + _N_SBU) for a, b in _SBU_PERSON_BONES)
        # Inter-person links between matching joints of A and B.
        + tuple((i, i + _N_SBU) for i in range(_N_SBU))
    ),
    persons=2,
    # The Kinect/OpenNI real-world frame the reader converts the files to (SOURCE.md's formula):
    # head above feet along +y in 99.98% of frames; (right - left shoulder) x (neck - torso)
    # points away from the partner for 91% of persons, so the frame is right-handed.
    frame=CoordinateFrame(
        up="+y",
        handedness="right",
        axes="millimetres from the sensor: x to the sensor's left, y up, z away from the sensor",
    ),
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
)

LAYOUTS: dict[str, Layout] = {"sbu": SBU_LAYOUT, "fpha": FPHA_LAYOUT}


def get_layout(name: str) -> Layout:
    """Look up a layout by name; KeyError lists the known names."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise KeyError(
            f"unknown skeleton layout {name!r}; known layouts: {', '.join(sorted(LAYOUTS))}"
        ) from None
