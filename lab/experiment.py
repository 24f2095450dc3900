"""Glue between data, model, training and evaluation, shared by the CLI and the reproduction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lab.config import CONFIGS, Protocol, load_experiment
from mrmp.gcn import GCNConfig, LatentGCN
from mrmp.manifest import InputContract, LayoutInfo
from mrmp.priors import get_prior
from mrmp.rates import MODES
from mrmp.skeleton import DescriptorConfig, describe_batch
from mrmp.skeleton.proportions import share_bounds
from training.augment import AugmentConfig, make_augment, training_views
from training.datasets import SkeletonDataset, load_dataset, read_dataset_folder
from training.evaluate import RATE_GRID, evaluate_rates
from training.train import TrainConfig, train

SYNTHETIC_PROTOCOL = Protocol(description="synthetic", filters=8, batch_size=200, test_folds=(0,))


def protocol(dataset: str) -> Protocol:
    """A dataset's protocol: its committed `configs/<dataset>.toml`'s, or for a synthetic
    dataset the synthetic one. ConfigError when a real dataset has no config file (e.g. an
    install without the repository's configs/)."""
    if dataset.startswith("synthetic-"):
        return SYNTHETIC_PROTOCOL
    return load_experiment(CONFIGS / f"{dataset}.toml").protocol


@dataclass
class Data:
    """A dataset with its descriptors computed once."""

    dataset: SkeletonDataset
    protocol: Protocol
    descriptor: DescriptorConfig
    x: Tensor
    y: Tensor

    def indices(self, test_fold: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(train, test) sequence indices; test_fold None trains on everything (no test set)."""
        if test_fold is None:
            return np.arange(len(self.y), dtype=np.int64), np.empty(0, dtype=np.int64)
        return self.dataset.split(test_fold)

    def split(self, test_fold: int | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Train and test tensors; test_fold None trains on everything (no test set)."""
        tr, te = (torch.from_numpy(i) for i in self.indices(test_fold))
        return self.x[tr], self.y[tr], self.x[te], self.y[te]


def load_data(
    name: str,
    descriptor: DescriptorConfig | None = None,
    data_dir: str | None = None,
    proto: Protocol | None = None,
) -> Data:
    """A dataset under `proto` (default: the dataset's committed protocol), described with
    `descriptor` (default: the protocol's)."""
    return described(load_dataset(name, data_dir), proto or protocol(name), descriptor)


def load_folder(
    path: Path,
    descriptor: DescriptorConfig | None = None,
    proto: Protocol | None = None,
    check: Callable[[SkeletonDataset], None] | None = None,
) -> Data:
    """A dataset folder (docs/datasets.md) under `proto` (default: `folder_protocol`'s),
    described with `descriptor` (default: the protocol's); `check` sees the dataset before it
    is described. Raises DatasetFolderError, SkeletonShapeError (a descriptor for another
    layout), and what `check` raises."""
    ds = read_dataset_folder(path)
    if check is not None:
        check(ds)
    return described(ds, proto or folder_protocol(ds), descriptor)


def described(
    ds: SkeletonDataset, proto: Protocol, descriptor: DescriptorConfig | None = None
) -> Data:
    """`ds` with its descriptors computed once (`descriptor`, default the protocol's)."""
    descriptor = descriptor or proto.descriptor
    x = torch.from_numpy(describe_batch(ds.sequences, descriptor, ds.layout.num_joints))
    return Data(ds, proto, descriptor, x, torch.from_numpy(ds.labels).long())


def folder_protocol(ds: SkeletonDataset) -> Protocol:
    """The protocol of a dataset trained without an experiment file: the author's 8 filters,
    batches of 64 (a small dataset still takes several steps an epoch), the descriptor's
    defaults with each person described about its own root when the layout declares one (as
    SBU's protocol does, configs/sbu.toml), and no augmentation (a person swap or a rotation
    may change what a user's class means)."""
    layout = ds.layout
    roots = layout.person_roots() if layout.root is not None else None
    root_joint = roots[0] if roots is not None and len(roots) == 1 else roots
    return Protocol(
        description=f"dataset folder {ds.name!r}",
        filters=8,
        batch_size=64,
        test_folds=tuple(sorted({int(f) for f in ds.folds})),
        descriptor=DescriptorConfig(root_joint=root_joint),
    )


@dataclass
class ModelSpec:
    """Everything needed to build a fresh model for a dataset."""

    prior: str = "gaussian"
    seed: int = 0
    arch: dict[str, Any] = field(default_factory=dict)


def build_model(data: Data, spec: ModelSpec) -> LatentGCN:
    ds = data.dataset
    config = GCNConfig(
        num_joints=ds.layout.num_joints,
        in_features=data.descriptor.feature_dim(),
        num_classes=len(ds.class_names),
        filters=data.protocol.filters,
    )
    if data.protocol.min_prunable_weights is not None:
        config = replace(config, min_prunable_weights=data.protocol.min_prunable_weights)
    config = replace(config, **spec.arch)
    adjacency = torch.from_numpy(ds.layout.adjacency())
    return LatentGCN(config, adjacency, get_prior(spec.prior), seed=spec.seed)


def train_config(data: Data, **overrides: Any) -> TrainConfig:
    """The protocol's batch size and augmentation, with `overrides` (TrainConfig fields)."""
    augment = data.protocol.augment.to_dict()
    cfg = TrainConfig(batch_size=data.protocol.batch_size, augment=augment)
    return replace(cfg, **overrides)


def fit(
    data: Data, model: LatentGCN, test_fold: int | None, cfg: TrainConfig, **kw: Any
) -> list[dict]:
    """`train` on every fold but `test_fold` (None: all data), with the configuration's
    augmentation built for the dataset's layout and, with temporal crops or missing-detection
    views, those views; returns `train`'s history (per epoch: epoch, ce, kl, lr)."""
    x, y, _, _ = data.split(test_fold)
    if cfg.temporal_crops > 1 or cfg.missing_views > 0:
        train_part, _ = data.indices(test_fold)
        sequences = [data.dataset.sequences[i] for i in train_part]
        x = training_views(sequences, data.dataset.layout, data.descriptor, cfg)
    augment = make_augment(AugmentConfig(**cfg.augment), data.dataset.layout, data.descriptor)
    return train(model, x, y, cfg, augment=augment, **kw)


def service_rates(cfg: TrainConfig) -> tuple[float, ...]:
    """Every rate a served model is evaluated at: its seen rates and the paper's 1% grid."""
    return tuple(sorted({round(r, 2) for r in (*cfg.rates, *RATE_GRID)}))


def manifest_for(
    data: Data,
    model: LatentGCN,
    cfg: TrainConfig,
    *,
    name: str,
    command: str,
    evaluation: dict[str, Any],
    test_fold: int | None = None,
) -> dict[str, Any]:
    """The manifest's descriptive fields for a model trained on `data` without `test_fold`
    (None: on all of it); the input's bone proportions are those of the training part."""
    ds = data.dataset
    rates = cfg.rates if cfg.method != "dense" else (0.0,)
    train, _ = data.indices(test_fold)
    layout = ds.layout
    seen = [ds.sequences[i] for i in train]
    shares = share_bounds(seen, layout.bones, layout.joint_names, layout.persons)
    planar = all(not np.asarray(seq)[..., 2].any() for seq in seen)
    return {
        "name": name,
        "dataset": ds.name,
        "class_names": list(ds.class_names),
        "layout": LayoutInfo.of(ds.layout).model_dump(mode="json"),
        "input": InputContract().model_dump(mode="json"),
        "descriptor": data.descriptor.to_dict(),
        "method": cfg.method,
        "kl_weight": cfg.kl_weight,
        "seen_rates": list(rates),
        "rate_range": [0.0, 0.99] if cfg.method != "dense" else [0.0, 0.0],
        "training": {
            "config": cfg.to_dict(),
            "command": command,
            "data": {
                "dataset": ds.name,
                "sequences": len(ds.labels),
                "held_out_fold": test_fold,
                "protocol": data.protocol.description,
                "settings": data.protocol.record(),
            },
        },
        "evaluation": evaluation,
        "input_stats": {"bone_share": shares, "planar": planar},
    }


def evaluation_table(
    model: LatentGCN, x: Tensor, y: Tensor, rates: tuple[float, ...], protocol_text: str
) -> dict[str, Any]:
    """Held-out accuracy and observed rate per rate, in both modes."""
    table = {mode: evaluate_rates(model, x, y, rates, mode) if len(x) else {} for mode in MODES}
    return {"protocol": protocol_text, "samples": len(x), "rates": table}
