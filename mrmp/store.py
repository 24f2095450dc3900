"""The model store: a folder with manifest.json and latent.safetensors (never a pickle).

The manifest's `version` is the sha256 of latent.safetensors, so a store whose weights were
changed, truncated or swapped is refused at load, with a message naming the file.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from mrmp.gcn import LatentGCN
from mrmp.manifest import FORMAT_VERSION, Manifest
from mrmp.priors import get_prior
from mrmp.validation import validation_faults

MANIFEST = "manifest.json"
WEIGHTS = "latent.safetensors"


class StoreError(ValueError):
    """A model store that cannot be used; the message names the file and the problem."""


def _tensors(model: LatentGCN) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, z in model.latents(prunable_only=False):
        out[f"latent.{name}"] = z.detach().contiguous()
        out[f"scale.{name}"] = torch.tensor(model.scales[name], dtype=torch.float32)
    for key, p in model.dense.items():
        out[f"dense.{key.replace('__', '.')}"] = p.detach().contiguous()
    out["adjacency"] = model.adjacency.detach().contiguous()
    return out


def save_model(folder: Path, model: LatentGCN, manifest: dict[str, Any]) -> Manifest:
    """Write the store from a manifest's descriptive fields (the version, architecture, prior
    and parameter counts are filled in from the model); returns the manifest written.
    Raises pydantic's ValidationError when the fields do not make a valid manifest."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    blob = st_save(_tensors(model))
    checked = Manifest.model_validate(
        {
            **manifest,
            "format_version": FORMAT_VERSION,
            "version": hashlib.sha256(blob).hexdigest(),
            "architecture": model.config.to_dict(),
            "prior": model.prior.name,
            "params": model.num_params(),
        }
    )
    (folder / WEIGHTS).write_bytes(blob)
    (folder / MANIFEST).write_text(json.dumps(checked.to_json(), indent=1) + "\n")
    return checked


def read_manifest(folder: Path) -> Manifest:
    """The checked manifest of a store; StoreError names the file and every field at fault."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise StoreError(f"{path}: no manifest (is {folder} a model folder?)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StoreError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise StoreError(f"{path}: expected a JSON object")
    if "format_version" in data and data["format_version"] != FORMAT_VERSION:
        raise StoreError(
            f"{path}: format_version {data['format_version']!r} is not {FORMAT_VERSION}"
        )
    try:
        return Manifest.model_validate(data)
    except ValidationError as e:
        raise StoreError(f"{path}: {validation_faults(e, 'manifest')}") from None


def load_model(folder: Path) -> tuple[LatentGCN, Manifest]:
    """Load and check a store: the manifest's fields, the weights' hash, tensor names, shapes,
    finiteness. Raises StoreError naming the file at fault."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    wpath = folder / WEIGHTS
    config = manifest.gcn_config
    prior = get_prior(manifest.prior)
    if not wpath.is_file():
        raise StoreError(f"{wpath}: missing")
    blob = wpath.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != manifest.version:
        raise StoreError(
            f"{wpath}: sha256 {digest[:12]}... does not match the manifest's version "
            f"{manifest.version[:12]}... (corrupt, truncated or replaced weights)"
        )
    try:
        tensors = st_load(blob)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise StoreError(f"{wpath}: not a readable safetensors file ({e})") from None

    n = config.num_joints
    model = LatentGCN(config, torch.zeros(n, n), prior)
    expected = _tensors(model)
    if set(tensors) != set(expected):
        extra = sorted(set(tensors) - set(expected))
        lacking = sorted(set(expected) - set(tensors))
        raise StoreError(
            f"{wpath}: tensors do not match the manifest's architecture "
            f"(missing {lacking[:5]}, unexpected {extra[:5]})"
        )
    for key, t in tensors.items():
        if t.shape != expected[key].shape:
            raise StoreError(
                f"{wpath}: tensor {key} has shape {tuple(t.shape)}, "
                f"the architecture needs {tuple(expected[key].shape)}"
            )
        if not torch.isfinite(t).all():
            raise StoreError(f"{wpath}: tensor {key} holds NaN or Inf")
    with torch.no_grad():
        for name, z in model.latents(prunable_only=False):
            z.copy_(tensors[f"latent.{name}"])
            scale = float(tensors[f"scale.{name}"])
            if not (math.isfinite(scale) and scale > 0):
                raise StoreError(f"{wpath}: scale.{name} must be positive, got {scale}")
            model.scales[name] = scale
        for key, p in model.dense.items():
            p.copy_(tensors[f"dense.{key.replace('__', '.')}"])
        model.adjacency.copy_(tensors["adjacency"])
    model.eval()
    return model, manifest
