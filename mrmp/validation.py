"""Pydantic's validation errors in words, for messages that name the file and the field."""

from __future__ import annotations

from pydantic import ValidationError


def validation_faults(error: ValidationError, whole: str) -> str:
    """One line for all of `error`'s faults: the missing keys first, then each other field
    (dotted path; `whole` where the fault is the object's as a whole) and what is wrong."""
    missing, faults = [], []
    for err in error.errors():
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "missing":
            missing.append(where)
        else:
            faults.append(f"{where or whole}: {err['msg'].removeprefix('Value error, ')}")
    if missing:
        faults.insert(0, f"missing keys {', '.join(missing)}")
    return "; ".join(faults)
