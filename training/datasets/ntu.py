"""NTU RGB+D (60 and 120) skeleton files: the `.skeleton` text format read into two persons of
the Kinect v2 skeleton, and the dataset's published benchmarks as folds.

Format (the dataset's Matlab/read_skeleton_file.m, https://github.com/shahroudy/NTURGB-D), one
item a line: the frame count; per frame the body count; per body a line of 10 values (bodyID,
clipedEdges, handLeftConfidence, handLeftState, handRightConfidence, handRightState,
isRestricted, leanX, leanY, trackingState), the joint count (25), then per joint a line of 12
values (x, y, z in metres of Kinect v2 camera space, depthX, depthY, colorX, colorY,
orientationW, X, Y, Z, trackingState). File names are SsssCcccPpppRrrrAaaa: setup, camera,
performer, replication, action (1-based).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
from tqdm import tqdm

from mrmp.skeleton.layouts import NTU25_LAYOUT, repeat_persons
from mrmp.skeleton.missing import missing_mask

from .dataset import SkeletonDataset
from .folder import TEST_FOLD, TRAIN_FOLD, is_number

NTU_PERSONS = 2
NTU_JOINTS = NTU25_LAYOUT.num_joints
# NTU's two persons in the folder's declared form: the Kinect v2 skeleton twice, each joint
# linked to the same joint of the other person (docs/datasets.md).
NTU_LAYOUT = repeat_persons(NTU25_LAYOUT, NTU_PERSONS, link_persons=True, name="ntu")

# The action names of the repository's README (A1..A120; A1..A60 are NTU RGB+D 60), its
# trailing periods removed and its typographic apostrophes made ASCII.
NTU_CLASSES: tuple[str, ...] = (
    "drink water",
    "eat meal/snack",
    "brushing teeth",
    "brushing hair",
    "drop",
    "pickup",
    "throw",
    "sitting down",
    "standing up (from sitting position)",
    "clapping",
    "reading",
    "writing",
    "tear up paper",
    "wear jacket",
    "take off jacket",
    "wear a shoe",
    "take off a shoe",
    "wear on glasses",
    "take off glasses",
    "put on a hat/cap",
    "take off a hat/cap",
    "cheer up",
    "hand waving",
    "kicking something",
    "put something inside pocket / take out something from pocket",
    "hopping (one foot jumping)",
    "jump up",
    "make a phone call/answer phone",
    "playing with phone/tablet",
    "typing on a keyboard",
    "pointing to something with finger",
    "taking a selfie",
    "check time (from watch)",
    "rub two hands together",
    "nod head/bow",
    "shake head",
    "wipe face",
    "salute",
    "put the palms together",
    "cross hands in front (say stop)",
    "sneeze/cough",
    "staggering",
    "falling",
    "touch head (headache)",
    "touch chest (stomachache/heart pain)",
    "touch back (backache)",
    "touch neck (neckache)",
    "nausea or vomiting condition",
    "use a fan (with hand or paper)/feeling warm",
    "punching/slapping other person",
    "kicking other person",
    "pushing other person",
    "pat on back of other person",
    "point finger at the other person",
    "hugging other person",
    "giving something to other person",
    "touch other person's pocket",
    "handshaking",
    "walking towards each other",
    "walking apart from each other",
    "put on headphone",
    "take off headphone",
    "shoot at the basket",
    "bounce ball",
    "tennis bat swing",
    "juggling table tennis balls",
    "hush (quite)",
    "flick hair",
    "thumb up",
    "thumb down",
    "make ok sign",
    "make victory sign",
    "staple book",
    "counting money",
    "cutting nails",
    "cutting paper (using scissors)",
    "snapping fingers",
    "open bottle",
    "sniff (smell)",
    "squat down",
    "toss a coin",
    "fold paper",
    "ball up paper",
    "play magic cube",
    "apply cream on face",
    "apply cream on hand back",
    "put on bag",
    "take off bag",
    "put something into a bag",
    "take something out of a bag",
    "open a box",
    "move heavy objects",
    "shake fist",
    "throw up cap/hat",
    "hands up (both hands)",
    "cross arms",
    "arm circles",
    "arm swings",
    "running on the spot",
    "butt kicks (kick backward)",
    "cross toe touch",
    "side kick",
    "yawn",
    "stretch oneself",
    "blow nose",
    "hit other person with something",
    "wield knife towards other person",
    "knock over other person (hit with body)",
    "grab other person's stuff",
    "shoot at other person with a gun",
    "step on foot",
    "high-five",
    "cheers and drink",
    "carry something with other person",
    "take a photo of other person",
    "follow other person",
    "whisper in other person's ear",
    "exchange things with other person",
    "support somebody with one's hand (someone is sick, help him to walk)",
    "finger-guessing game (playing rock-paper-scissors)",
)

# Cross-subject: these performers train, the others test. The twenty up to 38 are NTU RGB+D
# 60's (Shahroudy et al., CVPR 2016; performers 1..40), the rest NTU RGB+D 120's (Liu et al.,
# TPAMI 2019; performers 1..106).
NTU_TRAINING_SUBJECTS = frozenset((
    1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38, 45, 46, 47, 49,
    50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93,
    94, 95, 97, 98, 100, 103,
))  # fmt: skip
# Cross-view (NTU RGB+D 60): cameras 2 and 3 train, camera 1 tests.
NTU_TRAINING_CAMERAS = frozenset((2, 3))

Benchmark = Literal["cross-subject", "cross-view", "cross-setup"]
BENCHMARKS: tuple[Benchmark, ...] = ("cross-subject", "cross-view", "cross-setup")

_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")
_BODY_VALUES = 10
_JOINT_VALUES = 12


class NtuName(NamedTuple):
    """What an NTU file name says (1-based numbers)."""

    setup: int
    camera: int
    performer: int
    replication: int
    action: int


def parse_ntu_name(stem: str) -> NtuName:
    """SsssCcccPpppRrrrAaaa -> its numbers; ValueError for any other name or an action outside
    1..120."""
    match = _NAME.fullmatch(stem)
    if match is None:
        raise ValueError(f"{stem!r} is not an NTU RGB+D name SsssCcccPpppRrrrAaaa")
    name = NtuName(*(int(g) for g in match.groups()))
    if not 1 <= name.action <= len(NTU_CLASSES):
        raise ValueError(f"{stem!r}: action {name.action} is outside 1..{len(NTU_CLASSES)}")
    return name


def is_training(name: NtuName, benchmark: Benchmark) -> bool:
    """Whether a sample trains under a benchmark: cross-subject (NTU_TRAINING_SUBJECTS),
    cross-view (NTU_TRAINING_CAMERAS) or cross-setup (NTU RGB+D 120: even setup numbers)."""
    if benchmark == "cross-subject":
        return name.performer in NTU_TRAINING_SUBJECTS
    if benchmark == "cross-view":
        return name.camera in NTU_TRAINING_CAMERAS
    if benchmark == "cross-setup":
        return name.setup % 2 == 0
    raise ValueError(f"benchmark must be one of {', '.join(BENCHMARKS)}, got {benchmark!r}")


class _Lines:
    """The file's lines, taken one at a time; errors name the file and the 1-based line."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        while self.lines and not self.lines[-1].strip():
            self.lines.pop()
        self.next = 0

    def error(self, line: int, message: str) -> ValueError:
        return ValueError(f"{self.path}: line {line}: {message}")

    def take(self, what: str, count: int) -> tuple[int, list[str]]:
        """(line number, its `count` values) of the next line, which holds `what`."""
        if self.next >= len(self.lines):
            raise self.error(self.next + 1, f"the file ends where {what} was expected")
        self.next += 1
        values = self.lines[self.next - 1].split()
        if len(values) != count:
            raise self.error(self.next, f"{len(values)} values, expected {count} ({what})")
        return self.next, values

    def count(self, what: str) -> int:
        line, (value,) = self.take(what, 1)
        if not (value.isascii() and value.isdigit()):
            raise self.error(line, f"{what} {value!r} is not a count")
        return int(value)


def read_ntu_skeleton(path: str | os.PathLike[str]) -> np.ndarray:
    """(T, 50, 3) float32: x, y, z (metres, Kinect v2 camera space) of two persons of NTU25
    joints, person A's 25 then person B's, as the file lists them whatever the tracking state.

    Persons: the bodies (by bodyID) ranked by motion, NTU's own rule (the repository's README,
    "How did you choose the main actor"): the variance over the body's frames of each joint's
    x, y and z, summed; the most moving is person A, the next person B (a tie: the first seen).
    A person absent from a frame, and person B of a one-body file, is all zeros: a missing
    detection (mrmp/skeleton/missing.py). Further bodies are left out.

    Raises ValueError naming the file and line for a file that does not follow the format.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not ASCII text (byte {exc.start})") from None
    lines = _Lines(path, text)
    frames = lines.count("the frame count")
    bodies: dict[str, tuple[list[int], list[np.ndarray]]] = {}
    for t in range(frames):
        seen: dict[str, int] = {}
        for _ in range(lines.count(f"frame {t}'s body count")):
            line, values = lines.take("a body's 10 values", _BODY_VALUES)
            body = values[0]
            if body in seen:
                raise lines.error(line, f"body {body} repeats line {seen[body]} in frame {t}")
            seen[body] = line
            joints = _joints(lines, body)
            bodies.setdefault(body, ([], []))[0].append(t)
            bodies[body][1].append(joints)
    if lines.next < len(lines.lines):
        raise lines.error(lines.next + 1, f"more lines than the {frames} frames announced")
    x = np.zeros((frames, NTU_PERSONS * NTU_JOINTS, 3), dtype=np.float32)
    motion = {body: float(np.var(np.stack(js), axis=0).sum()) for body, (_, js) in bodies.items()}
    ranked = sorted(bodies, key=lambda body: -motion[body])  # stable: ties keep first seen
    for person, body in enumerate(ranked[:NTU_PERSONS]):
        ts, js = bodies[body]
        x[ts, person * NTU_JOINTS : (person + 1) * NTU_JOINTS] = np.stack(js)
    return x


def _joints(lines: _Lines, body: str) -> np.ndarray:
    """(25, 3) float32 x, y, z of one body's joint lines."""
    count = lines.count(f"body {body}'s joint count")
    if count != NTU_JOINTS:
        raise lines.error(lines.next, f"{count} joints, expected {NTU_JOINTS} (Kinect v2)")
    rows = [lines.take("a joint's 12 values", _JOINT_VALUES) for _ in range(count)]
    try:
        table = np.array([values for _, values in rows], dtype=np.float64)
    except ValueError:
        line, bad = next((ln, v) for ln, vs in rows for v in vs if not is_number(v))
        raise lines.error(line, f"{bad!r} is not a number") from None
    xyz = table[:, :3]
    if not np.isfinite(xyz).all():
        raise lines.error(rows[int(np.argwhere(~np.isfinite(xyz))[0, 0])][0], "x, y, z not finite")
    return xyz.astype(np.float32)


def load_ntu(
    directory: str | os.PathLike[str],
    benchmark: Benchmark = "cross-subject",
    *,
    progress: bool = False,
) -> tuple[SkeletonDataset, list[str]]:
    """Every `*.skeleton` file of `directory` (sorted by name) as a dataset named "ntu", and the
    names of the files left out because no body is in any of their frames (the samples NTU's
    README asks to ignore).

    Classes: the actions present, in action order, named as NTU_CLASSES; folds: TRAIN_FOLD and
    TEST_FOLD under `benchmark` (is_training); ids: the file names' stems. The sequences are
    held in memory (1.1 MB a minute of 30 fps recording). Raises FileNotFoundError for a
    directory without .skeleton files, ValueError for a file name or file that does not follow
    the format (read_ntu_skeleton). `progress`: a progress bar over the files (NTU-60 holds
    56,880 of them).
    """
    folder = Path(directory)
    files = sorted(folder.glob("*.skeleton"))
    if not files:
        raise FileNotFoundError(f"{folder}: no .skeleton files")
    kept: list[tuple[str, NtuName, np.ndarray]] = []
    skipped: list[str] = []
    for path in tqdm(files, desc="NTU files", unit="file", leave=False, disable=not progress):
        try:
            name = parse_ntu_name(path.stem)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        x = read_ntu_skeleton(path)
        if missing_mask(x).all():
            skipped.append(path.stem)
        else:
            kept.append((path.stem, name, x))
    if not kept:
        raise ValueError(f"{folder}: no .skeleton file has a body in any frame")
    actions = sorted({name.action for _, name, _ in kept})
    label = {action: k for k, action in enumerate(actions)}
    dataset = SkeletonDataset(
        name="ntu",
        layout=NTU_LAYOUT,
        class_names=tuple(NTU_CLASSES[action - 1] for action in actions),
        sequences=[x for _, _, x in kept],
        labels=np.array([label[name.action] for _, name, _ in kept]),
        folds=np.array(
            [TRAIN_FOLD if is_training(name, benchmark) else TEST_FOLD for _, name, _ in kept]
        ),
        ids=[stem for stem, _, _ in kept],
    )
    return dataset, skipped
