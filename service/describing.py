"""A request's sequences made whole and described: the input rules per sequence
(service.input_rules), then the core's descriptor; a sequence that cannot be described is
refused by the error type of its fault, named by its index."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mrmp.skeleton import DescriptorConfig, SkeletonError, describe
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
    whole, and each one's warnings. Raises the ApiError of the first sequence that is refused
    (`sequence i: ...`)."""
    x = np.empty((len(sequences), *input_shape), dtype=np.float32)
    warnings = []
    for i, seq in enumerate(sequences):
        whole, warned = rules.apply(seq, i)
        warnings.append(warned)
        try:
            x[i] = describe(whole, descriptor, num_joints)
        except SkeletonError as e:
            refusal = next(api for core, api in _REFUSALS if isinstance(e, core))
            raise refusal(f"sequence {i}: {e}") from None
    return x, warnings
