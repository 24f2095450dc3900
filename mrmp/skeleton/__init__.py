"""The skeleton input of a served model: joint layouts and the node descriptor."""

from __future__ import annotations

from .descriptor import DescriptorConfig, SkeletonError, describe, describe_batch
from .layouts import FPHA_LAYOUT, LAYOUTS, SBU_LAYOUT, Layout, get_layout

__all__ = [
    "FPHA_LAYOUT",
    "LAYOUTS",
    "SBU_LAYOUT",
    "DescriptorConfig",
    "Layout",
    "SkeletonError",
    "describe",
    "describe_batch",
    "get_layout",
]
