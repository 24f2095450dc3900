"""An experiment as a file: `configs/<dataset>.toml`, read into typed settings.

One file holds a dataset's protocol, the dense network's recipe, the MRMP and SRMP settings
and the ablation's variants; `mrmp reproduce`, `mrmp ablate` and `mrmp release` read it. A unit
of the reproduction records `settings_hash` of the settings that shaped it, so a unit of other
settings is refused rather than mixed in.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from mrmp.priors import PRIORS
from mrmp.skeleton import DescriptorConfig
from mrmp.validation import validation_faults
from training.augment import AugmentConfig

# The committed experiments, one per dataset (also the protocol `mrmp train` uses).
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
UnitKind = Literal["dense", "mrmp", "srmp"]
LrSchedule = Literal["constant", "cosine"]
# Descriptor options a variant may leave out (TOML has no null to set them to None).
OptionalDescriptor = Literal["root_joint", "axis_scale", "local_frame"]


class ConfigError(ValueError):
    """A config file that cannot be read: bad TOML, an unknown key or a bad value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Protocol(_Strict):
    """The dataset's evaluation protocol: what every unit of every method shares."""

    description: str
    filters: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    test_folds: tuple[int, ...] = Field(min_length=1)
    descriptor: DescriptorConfig = DescriptorConfig()
    augment: AugmentConfig = AugmentConfig()
    # The architecture's GCNConfig.min_prunable_weights (None: its default, 2048); 0 prunes
    # every weight matrix, the attention projections and the first block's included.
    min_prunable_weights: int | None = Field(None, ge=0)

    def record(self) -> dict[str, Any]:
        """The choices that shape every unit, as a unit's JSON records them (an architecture
        option only when set, so units made before it keep their settings hash)."""
        record: dict[str, Any] = {
            "filters": self.filters,
            "batch_size": self.batch_size,
            "descriptor": self.descriptor.to_dict(),
            "augment": self.augment.to_dict(),
        }
        if self.min_prunable_weights is not None:
            record["min_prunable_weights"] = self.min_prunable_weights
        return json.loads(json.dumps(record))


# A field's serialization_alias is the name a unit's `settings` records it under.
class DenseRecipe(_Strict):
    """The dense network's recipe (MP starts from it; MP's fine-tuning keeps the defaults)."""

    epochs: int = Field(gt=0)
    lr: float = Field(gt=0, serialization_alias="dense_lr")
    lr_schedule: LrSchedule = Field(serialization_alias="dense_lr_schedule")
    temporal_crops: int = Field(1, ge=1, serialization_alias="dense_temporal_crops")
    # None (absent from the file): the protocol's batch size.
    batch_size: int | None = Field(None, ge=1, serialization_alias="dense_batch_size")
    mp_finetune_epochs: int = Field(ge=0)
    # MP's fine-tuning of each pruned network (None: Adam at a constant 1e-3).
    mp_finetune_lr: float | None = Field(None, gt=0)
    mp_finetune_lr_schedule: LrSchedule | None = None

    def finetune_overrides(self) -> dict[str, Any]:
        """MP's fine-tuning settings the file sets, as TrainConfig fields."""
        return {
            key: value
            for key, value in (
                ("lr", self.mp_finetune_lr),
                ("lr_schedule", self.mp_finetune_lr_schedule),
            )
            if value is not None
        }


def _none_when_off(value: int | bool | None) -> int | bool | None:
    """An option's off value (0, False) held as None: absent from a unit's settings, so units
    trained before the option existed keep their settings hash."""
    return value or None


class MrmpSettings(_Strict):
    """One network trains every seen rate, `rates_per_step` of them per step. The optional
    fields (None: absent from the file, not recorded, so older units keep their settings hash)
    default to TrainConfig's: Adam at a constant 1e-3, the protocol's batch, no crops, no
    distillation."""

    epochs: int = Field(gt=0, serialization_alias="mrmp_epochs")
    rates_per_step: int = Field(ge=1)
    rate_jitter: bool
    top_rate_every_step: bool  # the sandwich rule
    kl_weight: float = Field(ge=0)
    lr: float | None = Field(None, gt=0, serialization_alias="mrmp_lr")
    lr_schedule: LrSchedule | None = Field(None, serialization_alias="mrmp_lr_schedule")
    batch_size: int | None = Field(None, ge=1, serialization_alias="mrmp_batch_size")
    temporal_crops: int | None = Field(None, ge=1, serialization_alias="mrmp_temporal_crops")
    # The KL estimate's bins over the prior's support (TrainConfig.kl_bins, METHOD section 4).
    kl_bins: int | None = Field(None, ge=2, serialization_alias="mrmp_kl_bins")
    # The observed-rate term's weight (TrainConfig.rate_weight); 0 (off) is held as None.
    rate_weight: float | None = Field(None, ge=0, serialization_alias="mrmp_rate_weight")
    # TrainConfig.inplace_distill; off is held as None (as missing_views).
    inplace_distill: bool | None = Field(None, serialization_alias="mrmp_inplace_distill")
    # Missing-detection views of each training sequence (TrainConfig.missing_views); 0 (off)
    # is held as None, so that units trained without the option keep their settings hash.
    missing_views: int | None = Field(None, ge=0, serialization_alias="mrmp_missing_views")
    # Not a unit setting: each prior is a unit of its own; SRMP uses the best of these.
    priors: tuple[str, ...] = Field(tuple(PRIORS), min_length=1, exclude=True)

    _off_is_none = field_validator("missing_views", "inplace_distill", "rate_weight")(
        _none_when_off
    )

    @field_validator("priors")
    @classmethod
    def _known_priors(cls, priors: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [p for p in priors if p not in PRIORS]
        if unknown:
            raise ValueError(f"unknown priors {unknown}; known: {', '.join(PRIORS)}")
        return priors


class SrmpSettings(_Strict):
    """One network per seen rate, with the best MRMP prior. The optional fields as
    MrmpSettings' (None: TrainConfig's)."""

    epochs: int = Field(gt=0, serialization_alias="srmp_epochs")
    kl_weight: float = Field(ge=0)
    lr: float | None = Field(None, gt=0, serialization_alias="srmp_lr")
    lr_schedule: LrSchedule | None = Field(None, serialization_alias="srmp_lr_schedule")
    batch_size: int | None = Field(None, ge=1, serialization_alias="srmp_batch_size")
    temporal_crops: int | None = Field(None, ge=1, serialization_alias="srmp_temporal_crops")
    kl_bins: int | None = Field(None, ge=2, serialization_alias="srmp_kl_bins")
    rate_weight: float | None = Field(None, ge=0, serialization_alias="srmp_rate_weight")
    # As MrmpSettings.missing_views (0 is held as None).
    missing_views: int | None = Field(None, ge=0, serialization_alias="srmp_missing_views")

    _off_is_none = field_validator("missing_views", "rate_weight")(_none_when_off)


class TrainOverrides(_Strict):
    """A variant's training settings beyond the ablation's epochs (TrainConfig fields)."""

    epochs: int | None = Field(None, gt=0)
    lr: float | None = Field(None, gt=0)
    lr_schedule: LrSchedule | None = None
    temporal_crops: int | None = Field(None, ge=1)


class Variant(_Strict):
    """One row of the ablation: overrides of the protocol's descriptor, augmentation and
    batch size, and of the training."""

    name: str = Field(min_length=1)
    descriptor: dict[str, Any] = {}
    descriptor_without: tuple[OptionalDescriptor, ...] = ()  # options left out (None)
    augment: dict[str, Any] = {}
    batch_size: int | None = Field(None, gt=0)
    train: TrainOverrides | None = None

    def resolve(self, protocol: Protocol) -> dict[str, Any]:
        """Full settings: the protocol's with this variant's overrides, as JSON holds them
        (ValueError for an override the descriptor or augmentation refuses)."""
        without = dict.fromkeys(self.descriptor_without)
        descriptor = {**protocol.descriptor.to_dict(), **self.descriptor, **without}
        augment = {**protocol.augment.to_dict(), **self.augment}
        try:
            augment_config = AugmentConfig(**augment)
        except TypeError as e:  # an unknown field
            raise ValueError(f"augment: {e}") from None
        settings: dict[str, Any] = {
            "descriptor": DescriptorConfig.from_dict(descriptor).to_dict(),
            "augment": augment_config.to_dict(),
            "batch_size": self.batch_size or protocol.batch_size,
        }
        if self.train is not None:  # absent otherwise, so rows without one keep their runs
            settings["train"] = self.train.model_dump(exclude_none=True)
        return json.loads(json.dumps(settings))


class Ablation(_Strict):
    epochs: int = Field(gt=0)
    seeds: tuple[int, ...] = Field(min_length=1)
    variants: tuple[Variant, ...] = Field(min_length=1)

    @field_validator("variants")
    @classmethod
    def _distinct_names(cls, variants: tuple[Variant, ...]) -> tuple[Variant, ...]:
        names = [v.name for v in variants]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"variant names must differ; repeated: {twice}")
        return variants


class Experiment(_Strict):
    """One `configs/<dataset>.toml`."""

    dataset: str
    protocol: Protocol
    dense: DenseRecipe
    mrmp: MrmpSettings
    srmp: SrmpSettings
    ablation: Ablation | None = None
    # The reproduction's training seeds: every unit is trained once per seed and the results
    # are means over seeds (with their spread). Not a unit setting: the seed is in each unit's
    # name, so units of other seeds are kept, not refused.
    seeds: tuple[int, ...] = Field((0,), min_length=1)
    _source: str = PrivateAttr("(in code)")

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: tuple[int, ...]) -> tuple[int, ...]:
        twice = sorted({s for s in seeds if seeds.count(s) > 1})
        if twice:
            raise ValueError(f"seeds must differ; repeated: {twice}")
        negative = [s for s in seeds if s < 0]
        if negative:
            raise ValueError(f"seeds must be 0 or more; got {negative}")
        return seeds

    @model_validator(mode="after")
    def _variants_resolve(self) -> Experiment:
        for variant in self.ablation.variants if self.ablation else ():
            try:
                variant.resolve(self.protocol)
            except ValueError as e:
                raise ValueError(f"ablation variant {variant.name!r}: {e}") from None
        return self

    @property
    def source(self) -> str:
        """The file this experiment was read from."""
        return self._source

    def unit_settings(self, kind: UnitKind) -> dict[str, Any]:
        """The settings that shape a unit of `kind`, named as units record them; one left to
        the protocol (None) is not recorded."""
        section: BaseModel = getattr(self, kind)
        return section.model_dump(by_alias=True, exclude_none=True)

    def unit_hash(self, kind: UnitKind) -> str:
        return settings_hash(self.unit_settings(kind), self.protocol.record())

    def differences(
        self, kind: UnitKind, settings: dict[str, Any], protocol: dict[str, Any]
    ) -> list[str]:
        """`key = value` of a unit's recorded settings and protocol where they differ from
        this experiment's, keys as this file names them."""
        section: BaseModel = getattr(self, kind)
        want = self.unit_settings(kind)
        differ = [
            f"{kind}.{field} = {settings.get(recorded)!r}"
            for field, info in type(section).model_fields.items()
            for recorded in [info.serialization_alias or field]
            if not info.exclude and settings.get(recorded) != want.get(recorded)
        ]
        return differ + [
            f"protocol.{key} = {protocol.get(key)!r}"
            for key, value in self.protocol.record().items()
            if protocol.get(key) != value
        ]


def settings_hash(settings: dict[str, Any], protocol: dict[str, Any]) -> str:
    """sha256 prefix of the canonical JSON of a unit's settings and protocol."""
    canonical = json.dumps(
        {"settings": settings, "protocol": protocol}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def load_experiment(path: Path) -> Experiment:
    """Read and check a config file (ConfigError naming the file and the key)."""
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    try:
        experiment = Experiment.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"{path}: {validation_faults(e, '(top level)')}") from None
    experiment._source = str(path)
    return experiment
