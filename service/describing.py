"""A request's sequences made whole and described: the input rules (service.input_rules), then
the core's descriptor, each over the whole batch at once; a sequence that cannot be described
is refused by the error type of its fault, named by its index."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mrmp.skeleton import DescriptorConfig, SkeletonError, describe_batch
from mrmp.skeleton.descriptor import (
    NonFiniteSkeletonError,
    SkeletonNoExtentError,
    SkeletonUnderflowError,
)
from service.errors import (
    ApiError,
    BadShapeError,
    NoExtentError,
    NonFiniteError,
    UnderflowError,
)
from service.input_rules import InputRules, InputWarning

# The descriptor's refusals, by type: each names its sequence.
_REFUSALS: tuple[tuple[type[SkeletonError], type[ApiError]], ...] = (
    (NonFiniteSkeletonError, NonFiniteError),
    (SkeletonUnderflowError, UnderflowError),
    (SkeletonNoExtentError, NoExtentError),
    (SkeletonError, BadShapeError),  # shape, and overflow
)


def describe_request(
    sequences: Sequence[np.ndarray],
    rules: InputRules,
    descriptor: DescriptorConfig,
    num_joints: int,
    input_shape: tuple[int, ...],
) -> tuple[np.ndarray, list[list[InputWarning]]]:
    """(B, J, F) float32 descriptors (`input_shape` = (J, F)) of the (T, J, 3) sequences made
    whole, and each one's warnings; the input rules and the descriptor each run once over the
    whole batch. Raises the ApiError of the first sequence that is refused
    (`sequence i: ...`), in order, as if each were made whole and described in turn."""
    made = rules.apply_all(sequences)
    try:
        x = describe_batch(made.sequences, descriptor, num_joints)
    except SkeletonError as e:  # its message names the sequence
        refusal = next(api for core, api in _REFUSALS if isinstance(e, core))
        raise refusal(str(e)) from None
    if made.refusal is not None:
        raise made.refusal
    if x.shape[1:] != tuple(input_shape):  # the manifest's descriptor and network disagree
        raise ValueError(f"descriptors of shape {x.shape[1:]}; the network takes {input_shape}")
    return x, made.warnings
