"""The input contract applied to each sequence of a request, before it is described: missing
detections filled by the core's rule (mrmp/skeleton/missing.py), too-short sequences flagged or
refused, proportions checked against what training saw; and the sequence's warnings, which say
in the answer what of the input was not what the model knows.

A warning is {"code": ..., "message": ...} plus its specifics:
- `dropped_frames`: `dropped` of `frames` frames had no joint observed;
- `missing_persons`: `persons` (0-based) never observed;
- `missing_joints`: joint names `absent` in every frame and `partial` (missing in some);
- `few_frames`: `frames` described, fewer than `min_frames`;
- `unusual_proportions`: `bones`, each {"bone", "share", "range"} outside the expected range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mrmp.manifest import Manifest
from mrmp.skeleton import missing
from mrmp.skeleton.descriptor import NonFiniteSkeletonError, check_finite
from mrmp.skeleton.proportions import bone_name, bone_shares_batch, person_bones
from service.errors import ApiError, NonFiniteError, NoSkeletonError, TooShortError
from service.settings import Settings

InputWarning = dict[str, object]


@dataclass(frozen=True)
class ShareBounds:
    """The bones whose share of their person's length is checked, and each one's (low, high)."""

    bones: tuple[tuple[int, int], ...]
    bounds: np.ndarray  # (len(bones), 2)


@dataclass(frozen=True)
class MadeWhole:
    """A request's sequences made whole and each one's warnings, up to `refusal`: the refusal
    of the sequence after them (None when none was refused)."""

    sequences: list[np.ndarray]
    warnings: list[list[InputWarning]]
    refusal: ApiError | None


@dataclass(frozen=True)
class InputRules:
    """The served layout's joints, persons and bones, the manifest's declared input contract,
    and the settings' rules on missing and short input; `shares` None when the manifest
    records no proportions to check against."""

    joint_names: tuple[str, ...]
    persons: int
    bones: tuple[tuple[int, int], ...]
    min_frames: int
    refuse_short: bool
    nan_is_missing: bool
    declared: dict[str, str]  # the manifest's input contract: units, position, missing joints
    shares: ShareBounds | None = None
    planar: bool = False  # trained on flat skeletons (z = 0): a request's z must be 0 too

    @classmethod
    def of(cls, manifest: Manifest, settings: Settings) -> InputRules:
        layout = manifest.layout
        names = tuple(layout.joint_names)
        stats = manifest.input_stats
        shares = None
        if stats is not None:
            checked = [
                b
                for b in person_bones(layout.bones, layout.num_joints, layout.persons)
                if bone_name(names, b) in stats.bone_share
            ]
            bounds = np.array([stats.bone_share[bone_name(names, b)] for b in checked])
            shares = ShareBounds(tuple(checked), bounds.reshape(-1, 2)) if checked else None
        return cls(
            joint_names=names,
            persons=layout.persons,
            bones=tuple(layout.bones),
            min_frames=settings.min_frames,
            refuse_short=settings.refuse_short,
            nan_is_missing=settings.missing_nan,
            declared=manifest.input.model_dump(),
            shares=shares,
            planar=stats is not None and stats.planar,
        )

    def public(self) -> dict[str, object]:
        """The input rules a client must know (for /v1/model and the V2 metadata): the
        manifest's and this server's."""
        return {
            **self.declared,
            "min_frames": self.min_frames,
            "short_sequences": "refused (422)" if self.refuse_short else "answered with a warning",
            "nan_is_missing": self.nan_is_missing,
            **(
                {"depth": "z = 0: the model was trained on flat (2D) skeletons"}
                if self.planar
                else {}
            ),
        }

    def apply_all(self, sequences: Sequence[np.ndarray]) -> MadeWhole:
        """The sequences made whole, each ((T', J, 3), T' <= T) with its warnings, up to the
        first one refused (NoSkeletonError: nothing observed; NonFiniteError: NaN or Inf as
        sent, NaN allowed when missing; TooShortError: refuse_short), which `MadeWhole.refusal`
        holds, naming its index; a sequence not of the layout's
        (T, J, 3) shape is kept as it is, for the descriptor to refuse. The proportions of
        all of them are measured at once (`bone_shares_batch`)."""
        wholes: list[np.ndarray] = []
        warnings: list[list[InputWarning]] = []
        checked: list[tuple[int, missing.MissingReport]] = []  # sequences of the layout's shape
        refusal = None
        for index, seq in enumerate(sequences):
            try:
                whole, warned, report = self._made_whole(seq, index)
            except (NoSkeletonError, NonFiniteError, TooShortError) as e:
                refusal = e
                break
            if report is not None:
                checked.append((index, report))
            wholes.append(whole)
            warnings.append(warned)
        if self.shares is not None and checked:
            shares = bone_shares_batch(
                [wholes[i] for i, _ in checked],
                self.shares.bones,
                len(self.joint_names),
                self.persons,
            )
            for (i, report), values in zip(checked, shares, strict=True):
                warnings[i] += self._proportions(self.shares, values, report)
        return MadeWhole(wholes, warnings, refusal)

    def _made_whole(
        self, seq: np.ndarray, index: int
    ) -> tuple[np.ndarray, list[InputWarning], missing.MissingReport | None]:
        """One sequence made whole, its warnings but those on proportions, and what was
        missing (None: not of the layout's shape, returned as it is)."""
        joints = len(self.joint_names)
        if seq.ndim != 3 or seq.shape[0] == 0 or seq.shape[1:] != (joints, 3):
            return seq, [], None
        try:  # on the sequence as sent: filling moves values and frames
            check_finite(seq, nan_allowed=self.nan_is_missing)
        except NonFiniteSkeletonError as e:
            raise NonFiniteError(f"sequence {index}: {e}") from None
        try:
            x, report = missing.fill_missing(seq, self.persons, self.bones, self.nan_is_missing)
        except missing.NoSkeletonError as e:
            raise NoSkeletonError(f"sequence {index}: {e}") from None
        warnings = [] if report.complete else self._missing(report)
        if self.planar:
            warnings += self._depth(seq, self.nan_is_missing)
        frames = x.shape[0]
        if frames < self.min_frames:
            described = f"{frames} frame(s)" + (
                f" ({len(report.dropped_frames)} of {report.frames} dropped)"
                if report.dropped_frames
                else ""
            )
            if self.refuse_short:
                raise TooShortError(
                    f"sequence {index}: {described}; this server refuses fewer than "
                    f"{self.min_frames}"
                )
            warnings.append(
                {
                    "code": "few_frames",
                    "message": f"{described}, fewer than min_frames ({self.min_frames}): "
                    "too little motion for a confident answer",
                    "frames": frames,
                    "min_frames": self.min_frames,
                }
            )
        return x, warnings, report

    @staticmethod
    def _depth(seq: np.ndarray, nan_is_missing: bool) -> list[InputWarning]:
        """A model trained on flat skeletons (z = 0) has never seen depth: z changes the
        descriptor's centre and spread, so such an answer is not one to trust. Only observed
        joints count (a joint sent as NaN, when that is missing, has no depth)."""
        observed = ~missing.missing_mask(seq, nan_is_missing)
        deep = int(np.count_nonzero(seq[..., 2][observed]))
        if not deep:
            return []
        return [
            {
                "code": "depth_not_trained",
                "message": f"z is not 0 at {deep} of {seq.shape[0] * seq.shape[1]} joint(s): "
                "the model was trained on flat (2D) skeletons, z = 0; send z = 0",
                "points": deep,
            }
        ]

    def _missing(self, report: missing.MissingReport) -> list[InputWarning]:
        out: list[InputWarning] = []
        names = self.joint_names
        if report.dropped_frames:
            n = len(report.dropped_frames)
            out.append(
                {
                    "code": "dropped_frames",
                    "message": f"{n} of {report.frames} frame(s) have no joint observed "
                    "(all at (0, 0, 0)): described from the other frames",
                    "dropped": n,
                    "frames": report.frames,
                }
            )
        per = len(names) // self.persons
        if report.absent_persons:
            who = ", ".join(
                f"person {p} ({names[p * per]} to {names[(p + 1) * per - 1]})"
                for p in report.absent_persons
            )
            out.append(
                {
                    "code": "missing_persons",
                    "message": f"{who} not observed in any frame: placed at the observed "
                    "joints' mean",
                    "persons": list(report.absent_persons),
                }
            )
        absent = [names[j] for j in report.absent_joints if j // per not in report.absent_persons]
        partial = [names[j] for j in report.partial_joints]
        if absent or partial:
            parts = []
            if absent:
                parts.append(
                    f"never observed, placed at their nearest observed joint along the bones: "
                    f"{', '.join(absent)}"
                )
            if partial:
                parts.append(f"missing in some frames, interpolated: {', '.join(partial)}")
            out.append(
                {
                    "code": "missing_joints",
                    "message": "joints " + "; ".join(parts),
                    "absent": absent,
                    "partial": partial,
                }
            )
        return out

    def _proportions(
        self, shares: ShareBounds, values: np.ndarray, report: missing.MissingReport
    ) -> list[InputWarning]:
        """Bones whose share (`values`, per checked bone) lies outside the range expected from
        training; persons with a joint never observed are not checked (their filled joints make
        bones of length 0)."""
        low, high = shares.bounds[:, 0], shares.bounds[:, 1]
        outside = (values < low) | (values > high)
        if not outside.any():
            return []
        if report.absent_joints:
            per = len(self.joint_names) // self.persons
            owner = np.array([a // per for a, _ in shares.bones])
            outside &= ~np.isin(owner, [j // per for j in report.absent_joints])
        if not outside.any():
            return []
        bones = [
            {
                "bone": bone_name(self.joint_names, shares.bones[i]),
                "share": round(float(values[i]), 4),
                "range": [float(low[i]), float(high[i])],
            }
            for i in np.flatnonzero(outside)
        ]
        listed = ", ".join(f"{b['bone']} {b['share']} (expected {b['range']})" for b in bones)
        return [
            {
                "code": "unusual_proportions",
                "message": "bone length shares (of the person's summed bone length) outside "
                f"the range expected from training: {listed}",
                "bones": bones,
            }
        ]
