"""The joint orders and connections of common skeleton tools, transcribed in each tool's own
form (its names, its numbering, its list of pairs) and turned into 0-based joint names and bones
here; layouts.py gives them a frame and a root. docs/layouts.md cites every source."""

from __future__ import annotations

from collections.abc import Sequence


def _unique_bones(pairs: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """`pairs` in order without a repeated undirected pair or a self pair."""
    seen: set[frozenset[int]] = set()
    bones: list[tuple[int, int]] = []
    for a, b in pairs:
        key = frozenset((a, b))
        if a != b and key not in seen:
            seen.add(key)
            bones.append((a, b))
    return tuple(bones)


def _flat_pairs(flat: Sequence[int]) -> tuple[tuple[int, int], ...]:
    """OpenPose's flat `a,b, a,b, ...` pair lists as (a, b) tuples."""
    return _unique_bones(tuple(zip(flat[::2], flat[1::2], strict=True)))


# Kinect v2 / NTU RGB+D: the Kinect v2 SDK's JointType order, which NTU RGB+D's files keep
# (the CVPR 2016 paper's figure 1, 1-based: 1 base of the spine ... 25 right thumb).
NTU25_JOINTS = (
    "SpineBase", "SpineMid", "Neck", "Head", "ShoulderLeft", "ElbowLeft", "WristLeft",
    "HandLeft", "ShoulderRight", "ElbowRight", "WristRight", "HandRight", "HipLeft",
    "KneeLeft", "AnkleLeft", "FootLeft", "HipRight", "KneeRight", "AnkleRight", "FootRight",
    "SpineShoulder", "HandTipLeft", "ThumbLeft", "HandTipRight", "ThumbRight",
)  # fmt: skip
# NTU RGB+D's Matlab/show_skeleton.m: "each joint is connected to some other joint" (1-based);
# joints 1 and 2 name each other, so the pair is kept once.
_NTU25_CONNECTING_JOINT = (
    2, 1, 21, 3, 21, 5, 6, 7, 21, 9, 10, 11, 1, 13, 14, 15, 1, 17, 18, 19, 2, 8, 8, 12, 12,
)  # fmt: skip
NTU25_BONES = _unique_bones(tuple((j, k - 1) for j, k in enumerate(_NTU25_CONNECTING_JOINT)))

# COCO keypoints: the person category's "keypoints" and "skeleton" (1-based) of the
# person_keypoints annotations.
COCO17_JOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
_COCO17_SKELETON = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9),
    (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip
COCO17_BONES = _unique_bones(tuple((a - 1, b - 1) for a, b in _COCO17_SKELETON))

# OpenPose BODY_25: POSE_BODY_25_BODY_PARTS (doc/02_output.md) and the pairs it draws,
# POSE_BODY_25_PAIRS_RENDER_GPU (include/openpose/pose/poseParametersRender.hpp).
OPENPOSE25_JOINTS = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip",
    "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar",
    "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
)  # fmt: skip
OPENPOSE25_BONES = _flat_pairs((
    1,8,   1,2,   1,5,   2,3,   3,4,   5,6,   6,7,   8,9,   9,10,  10,11, 8,12,  12,13, 13,14,
    1,0,   0,15, 15,17,  0,16, 16,18,   14,19,19,20,14,21, 11,22,22,23,11,24,
))  # fmt: skip

# OpenPose COCO (18 keypoints): POSE_COCO_BODY_PARTS (doc/02_output.md) and
# POSE_COCO_PAIRS_RENDER_GPU (include/openpose/pose/poseParametersRender.hpp).
OPENPOSE18_JOINTS = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "RHip",
    "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar",
)  # fmt: skip
OPENPOSE18_BONES = _flat_pairs((
    1,2,   1,5,   2,3,   3,4,   5,6,   6,7,   1,8,   8,9,   9,10,  1,11,  11,12, 12,13,  1,0,
    0,14, 14,16,  0,15, 15,17,
))  # fmt: skip

# MediaPipe Pose: PoseLandmark and POSE_CONNECTIONS (mediapipe/python/solutions/pose.py,
# pose_connections.py). Its connections leave the mouth and the face apart from the body.
MEDIAPIPE33_JOINTS = (
    "NOSE", "LEFT_EYE_INNER", "LEFT_EYE", "LEFT_EYE_OUTER", "RIGHT_EYE_INNER", "RIGHT_EYE",
    "RIGHT_EYE_OUTER", "LEFT_EAR", "RIGHT_EAR", "MOUTH_LEFT", "MOUTH_RIGHT", "LEFT_SHOULDER",
    "RIGHT_SHOULDER", "LEFT_ELBOW", "RIGHT_ELBOW", "LEFT_WRIST", "RIGHT_WRIST", "LEFT_PINKY",
    "RIGHT_PINKY", "LEFT_INDEX", "RIGHT_INDEX", "LEFT_THUMB", "RIGHT_THUMB", "LEFT_HIP",
    "RIGHT_HIP", "LEFT_KNEE", "RIGHT_KNEE", "LEFT_ANKLE", "RIGHT_ANKLE", "LEFT_HEEL",
    "RIGHT_HEEL", "LEFT_FOOT_INDEX", "RIGHT_FOOT_INDEX",
)  # fmt: skip
MEDIAPIPE33_CONNECTIONS = (
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12),
    (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16), (16, 18),
    (16, 20), (16, 22), (18, 20), (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27),
    (26, 28), (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32),
)  # fmt: skip
