"""dataset.json of the documented dataset folder (docs/datasets.md): the dataset's name, its
classes, its layout (a built-in name or a declared one-person skeleton repeated for its persons)
and its frame, checked strictly; and the error every refusal of the folder raises."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from mrmp.skeleton import Layout, get_layout
from mrmp.skeleton.layouts import CoordinateFrame, repeat_persons

INFO_FILE = "dataset.json"
# Persons are named A..Z in the joint names (repeat_persons).
MAX_PERSONS = 26


_M = TypeVar("_M", bound=BaseModel)


class DatasetFolderError(ValueError):
    """A dataset folder that cannot be trained on; the message names the file and the place."""


class DeclaredLayout(BaseModel):
    """One person's joints, bones and root joint (an index among them; none when omitted); a
    sequence holds `persons` of them one after another."""

    model_config = ConfigDict(extra="forbid")

    joint_names: list[StrictStr] = Field(min_length=1)
    bones: list[tuple[StrictInt, StrictInt]]
    persons: StrictInt = Field(default=1, ge=1, le=MAX_PERSONS)
    root: StrictInt | None = None


class DatasetInfo(BaseModel):
    """dataset.json. `layout` is a built-in layout's name or a DeclaredLayout (checked apart,
    so that an error in one form is not reported against the other); `frame` is required with a
    declared layout and replaces a built-in layout's own."""

    model_config = ConfigDict(extra="forbid")

    name: StrictStr = Field(min_length=1)
    classes: list[StrictStr] = Field(min_length=2)
    layout: Any
    frame: CoordinateFrame | None = None


def read_info(path: Path) -> DatasetInfo:
    """dataset.json, checked: valid JSON, known keys, classes named once."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DatasetFolderError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise DatasetFolderError(
            f"{path}: bad JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    info = _validated(DatasetInfo, raw, path, prefix=())
    names = _first_repeat(info.classes)
    if names is not None:
        raise DatasetFolderError(f"{path}: key 'classes': class {names!r} is listed twice")
    return info


def layout_of(info: DatasetInfo, path: Path) -> Layout:
    """The built-in layout (its frame replaced when dataset.json gives one) or the P-person
    layout built from the declared one."""
    if isinstance(info.layout, str):
        try:
            builtin = get_layout(info.layout)
        except KeyError as exc:
            raise DatasetFolderError(f"{path}: key 'layout': {exc.args[0]}") from None
        return builtin if info.frame is None else replace(builtin, frame=info.frame)
    if not isinstance(info.layout, dict):
        raise DatasetFolderError(
            f"{path}: key 'layout': expected a built-in layout's name or an object with "
            "joint_names, bones and persons"
        )
    declared = _validated(DeclaredLayout, info.layout, path, prefix=("layout",))
    if info.frame is None:
        raise DatasetFolderError(
            f"{path}: key 'frame': required with a declared layout (up, handedness, axes: the "
            "coordinate frame a served model states to its clients)"
        )
    return _persons_layout(info.name, declared, info.frame, path)


def _persons_layout(
    name: str, declared: DeclaredLayout, frame: CoordinateFrame, path: Path
) -> Layout:
    """`persons` copies of the declared person, each joint linked to the same joint of the next
    person (SBU's inter-person links); joint names prefixed "A_", "B_"... when there are two or
    more persons."""
    joints = declared.joint_names
    repeat = _first_repeat(joints)
    if repeat is not None:
        raise DatasetFolderError(
            f"{path}: key 'layout.joint_names': joint {repeat!r} is listed twice"
        )
    if declared.root is not None and not 0 <= declared.root < len(joints):
        raise DatasetFolderError(
            f"{path}: key 'layout.root': joint {declared.root} is outside 0..{len(joints) - 1} "
            "(the declared joints)"
        )
    seen: dict[frozenset[int], int] = {}
    for k, (a, b) in enumerate(declared.bones):
        where = f"{path}: key 'layout.bones[{k}]': bone [{a}, {b}]"
        if not (0 <= a < len(joints) and 0 <= b < len(joints)):
            raise DatasetFolderError(
                f"{where} names a joint outside 0..{len(joints) - 1} (the declared joints)"
            )
        if a == b:
            raise DatasetFolderError(f"{where} joins a joint to itself")
        if frozenset((a, b)) in seen:
            raise DatasetFolderError(f"{where} repeats bones[{seen[frozenset((a, b))]}]")
        seen[frozenset((a, b))] = k
    person = Layout(
        name=name,
        joint_names=tuple(joints),
        bones=tuple(declared.bones),
        persons=1,
        frame=frame,
        root=declared.root,
    )
    return repeat_persons(person, declared.persons, link_persons=True, name=name)


def _validated(model: type[_M], raw: object, path: Path, prefix: tuple[str, ...]) -> _M:
    """`model` from parsed JSON, its first error as a DatasetFolderError naming the key."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = _key_name(prefix + tuple(err["loc"]))
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            known = _model_at(model, err["loc"][:-1]).model_fields
            message = f"unknown key (known: {', '.join(known)})"
        raise DatasetFolderError(f"{path}: key '{loc or 'top level'}': {message}") from None


def _model_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel]:
    """The model of the object at `loc` (field names leading through nested models)."""
    for part in loc:
        annotation = model.model_fields[str(part)].annotation
        model = next(
            t
            for t in (annotation, *get_args(annotation))
            if isinstance(t, type) and issubclass(t, BaseModel)
        )
    return model


def _key_name(loc: tuple[str | int, ...]) -> str:
    """('layout', 'bones', 3, 0) -> "layout.bones[3][0]"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _first_repeat(items: list[str]) -> str | None:
    return next((item for k, item in enumerate(items) if item in items[:k]), None)


# ----------------------------------------------------------------------------- labels.csv
