"""The model store's manifest.json, typed: what a stored model is, how its input looks, how it
was trained and evaluated (shared/DESIGN.md, the model store).

`Manifest.model_validate` is the one check of a manifest: a field that is missing, of the wrong
type, or inconsistent with another (a descriptor that does not fit the architecture, joint
names that do not match the joint count) raises pydantic's ValidationError, which the store
reports as a StoreError naming the file.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from mrmp.gcn import GCNConfig
from mrmp.priors import PRIORS
from mrmp.rates import Mode
from mrmp.skeleton import DescriptorConfig, Layout, SkeletonError
from mrmp.skeleton.layouts import CoordinateFrame
from mrmp.skeleton.proportions import bone_name, person_bones

# 2: the input contract (the layout's frame and bones, `input`); a manifest of 1 has neither.
FORMAT_VERSION = 2


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LayoutInfo(_Model):
    """The input's joints: `persons` skeletons of `num_joints / persons` joints each, one after
    another, in the order of `joint_names`; `bones` the (i, j) joint pairs the missing-joint
    fill follows; `frame` the coordinate frame the model knows."""

    name: str
    num_joints: int = Field(gt=0)
    persons: int = Field(gt=0)
    joint_names: list[str]
    bones: list[tuple[int, int]]
    frame: CoordinateFrame

    @classmethod
    def of(cls, layout: Layout) -> LayoutInfo:
        """A built-in layout as the manifest records it."""
        return cls(
            name=layout.name,
            num_joints=layout.num_joints,
            persons=layout.persons,
            joint_names=list(layout.joint_names),
            bones=list(layout.bones),
            frame=layout.frame,
        )

    @model_validator(mode="after")
    def _joints_match(self) -> LayoutInfo:
        if len(self.joint_names) != self.num_joints:
            raise ValueError(
                f"{len(self.joint_names)} joint_names for num_joints {self.num_joints}"
            )
        if self.num_joints % self.persons:
            raise ValueError(f"{self.num_joints} joints do not split into {self.persons} persons")
        n = self.num_joints
        bad = [b for b in self.bones if b[0] == b[1] or not all(0 <= j < n for j in b)]
        if bad:
            raise ValueError(f"bones {bad} are not pairs of distinct joints among {n}")
        return self


class InputContract(_Model):
    """What a request's coordinates may be beyond the layout's frame: the descriptor centres
    every sequence on its mean point and divides by its RMS spread, so any one unit for all
    three axes and any position serve alike; a joint at exactly (0, 0, 0) is a missing
    detection (mrmp/skeleton/missing.py)."""

    units: str = (
        "any, the same for x, y and z (the descriptor is invariant to a uniform change of unit)"
    )
    position: str = "any (the descriptor is invariant to translation)"
    missing: str = (
        "a joint at exactly (0, 0, 0) is missing: frames with no joint are dropped, gaps are "
        "interpolated in time, joints never seen take their nearest observed joint along the "
        "bones, a person never seen the observed joints' mean"
    )


class InputStats(_Model):
    """What training saw of the input, for the answers' warnings: per bone within one person,
    named by its joints ("A_HEAD-A_NECK"), the (low, high) range of its share of its person's
    summed bone length, each a median over a sequence's frames (mrmp/skeleton/proportions.py).
    Bones not named are not checked. `planar`: every training coordinate's z was 0 (a 2D
    tool's keypoints, docs/datasets.md), so a request's z must be 0 too."""

    bone_share: dict[str, tuple[float, float]]
    planar: bool = False

    @field_validator("bone_share")
    @classmethod
    def _ranges(cls, shares: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        bad = [name for name, (low, high) in shares.items() if not 0.0 <= low <= high <= 1.0]
        if bad:
            raise ValueError(f"bone_share ranges {bad} must satisfy 0 <= low <= high <= 1")
        return shares


class RateEvaluation(_Model):
    """Held-out accuracy (percent) and observed rate (fraction of prunable weights pruned);
    for a table averaged over several training seeds, the sample standard deviation of the
    accuracy over seeds (percentage points; absent otherwise, also from manifest.json)."""

    accuracy: float
    observed_rate: float
    accuracy_std: float | None = None

    @model_serializer(mode="wrap")
    def _without_absent_std(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        row = handler(self)
        if row.get("accuracy_std") is None:
            row.pop("accuracy_std", None)
        return row


class Evaluation(_Model):
    """The evaluation table: per mode, per rate ("0.50"), accuracy and observed rate."""

    protocol: str | None = None
    samples: int | None = None
    folds: list[int] | None = None
    rates: dict[Mode, dict[str, RateEvaluation]] = {}


class Training(_Model):
    """The training configuration and the command that made the model; `data`: what it was
    trained on (the dataset, its sequence count, the fold held out, the protocol's description
    and the settings that shaped the input), absent in stores written before it was recorded."""

    config: dict[str, Any]
    command: str
    data: dict[str, Any] | None = None


class Manifest(_Model):
    """manifest.json. `version` is the sha256 of latent.safetensors; `rate_range` the rates a
    request may ask for (fractions, lowest first); `seen_rates` those trained."""

    name: str = Field(min_length=1)
    dataset: str
    class_names: list[str] = Field(min_length=1)
    layout: LayoutInfo
    input: InputContract
    input_stats: InputStats | None = None
    descriptor: dict[str, Any]
    method: str | None = None
    kl_weight: float | None = None
    seen_rates: list[float]
    rate_range: tuple[float, float]
    training: Training | None = None
    evaluation: Evaluation
    format_version: Literal[2]
    version: str = Field(pattern=r"^[0-9a-f]{64}$")
    architecture: dict[str, Any]
    prior: str
    params: dict[str, int] | None = None

    @field_validator("prior")
    @classmethod
    def _known_prior(cls, prior: str) -> str:
        if prior not in PRIORS:
            raise ValueError(f"unknown prior {prior!r}; known: {', '.join(PRIORS)}")
        return prior

    @field_validator("rate_range")
    @classmethod
    def _rate_range(cls, bounds: tuple[float, float]) -> tuple[float, float]:
        low, high = bounds
        if not 0.0 <= low <= high < 1.0:
            raise ValueError(f"rate_range {list(bounds)} must satisfy 0 <= low <= high < 1")
        return bounds

    @model_validator(mode="after")
    def _fits_the_architecture(self) -> Manifest:
        config = self.gcn_config  # raises ValueError/TypeError on a bad architecture
        descriptor = self.descriptor_config
        if config.num_joints != self.layout.num_joints:
            raise ValueError(
                f"layout has {self.layout.num_joints} joints, the architecture {config.num_joints}"
            )
        if config.num_classes != len(self.class_names):
            raise ValueError(
                f"{len(self.class_names)} class_names for an architecture of "
                f"{config.num_classes} classes"
            )
        try:
            descriptor.check_joints(config.num_joints)
            fits = descriptor.feature_dim() == config.in_features
        except SkeletonError:
            fits = False
        if not fits:
            raise ValueError(
                f"descriptor {descriptor.to_dict()} does not fit the model "
                f"({config.num_joints} joints, {config.in_features} features each)"
            )
        return self

    @model_validator(mode="after")
    def _stats_name_the_layouts_bones(self) -> Manifest:
        if self.input_stats is None:
            return self
        layout = self.layout
        known = {
            bone_name(layout.joint_names, b)
            for b in person_bones(layout.bones, layout.num_joints, layout.persons)
        }
        unknown = sorted(set(self.input_stats.bone_share) - known)
        if unknown:
            raise ValueError(f"input_stats name bones that the layout lacks: {unknown}")
        return self

    @property
    def gcn_config(self) -> GCNConfig:
        return GCNConfig.from_dict(self.architecture)

    @property
    def descriptor_config(self) -> DescriptorConfig:
        return DescriptorConfig.from_dict(self.descriptor)

    def evaluated(self, mode: Mode = "prior") -> dict[str, RateEvaluation]:
        """The evaluation table of one mode: rate key ("0.50") -> accuracy, observed rate."""
        return self.evaluation.rates.get(mode, {})

    def to_json(self) -> dict[str, Any]:
        """The manifest as written to manifest.json."""
        return self.model_dump(mode="json")
