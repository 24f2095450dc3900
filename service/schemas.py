"""Pydantic models of the request and answer bodies, for the OpenAPI document.

Requests are decoded by hand (`service.decoding`, `service.routes_v1`, `service.v2_codec`:
faster on nested float lists); these models state the same contract for clients and for
schema-driven tests.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mrmp.rates import Mode
from service.policy import ChosenBy

# The input contract, as GET /v1/model and the V2 model metadata state it.
SEQUENCES = (
    "skeleton sequences, each T frames x J joints x 3 (x, y, z): joints in the order of "
    "GET /v1/model's layout.joint_names (its persons one after another), coordinates in the "
    "layout's frame (layout.frame: the sensor's own axes); any unit (the same for x, y and z) "
    "and any position serve alike. A joint at exactly (0, 0, 0) is a missing detection: "
    "filled as the model was trained to (frames with no joint dropped, gaps interpolated, "
    "joints never seen at their nearest observed joint, a person never seen at the others' "
    "mean) and listed in the prediction's warnings; a sequence with no joint observed is a "
    "422, as is one with all joints at one point. Fewer frames than input.min_frames are "
    "answered with a warning (or refused, as input.short_sequences says)."
)


class ClassifyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sequences: list[list[list[list[float]]]] = Field(
        ...,
        min_length=1,
        description=SEQUENCES,
    )
    rate: float | Literal["auto"] | None = Field(
        None,
        description='pruning rate (0 = dense), or "auto" (the default tier, pruned further '
        "under load); default: the default tier",
    )
    tier: str | None = Field(None, description="a tier name from GET /v1/rates")
    mode: Mode | None = Field(None, description="threshold: prior a(r), or exact per layer")
    top_k: int = Field(3, ge=1)
    allow_degrade: bool | None = Field(
        None, description="under load, the server may serve a higher rate (the degrade tier)"
    )
    max_latency_ms: float | None = Field(
        None, ge=0, description="instead of a rate: the least-pruned rate measured this fast"
    )
    min_accuracy: float | None = Field(
        None, ge=0, description="instead of a rate: the most-pruned rate this accurate (%)"
    )


class TopK(BaseModel):
    label: str
    class_index: int
    score: float


class InputWarning(BaseModel):
    """What of a sequence was not what the model knows; the specifics depend on the code."""

    model_config = ConfigDict(extra="forbid")

    code: Literal[
        "dropped_frames",
        "missing_persons",
        "missing_joints",
        "few_frames",
        "unusual_proportions",
        "depth_not_trained",
    ]
    message: str
    dropped: int | None = Field(None, description="dropped_frames: frames with no joint seen")
    frames: int | None = Field(
        None, description="dropped_frames: frames sent; few_frames: frames described"
    )
    persons: list[int] | None = Field(None, description="missing_persons: 0-based persons")
    absent: list[str] | None = Field(None, description="missing_joints: never observed")
    partial: list[str] | None = Field(
        None, description="missing_joints: missing in some frames (interpolated)"
    )
    min_frames: int | None = Field(None, description="few_frames: the server's min_frames")
    points: int | None = Field(
        None, description="depth_not_trained: joints (frames x joints) sent with z not 0"
    )
    bones: list[dict[str, Any]] | None = Field(
        None,
        description='unusual_proportions: {"bone", "share", "range"} of each bone whose share '
        "of its person's summed bone length lies outside the range expected from training",
    )


class Prediction(TopK):
    top_k: list[TopK]
    warnings: list[InputWarning] = Field(
        description="empty when the input is what the model knows: missing joints, persons or "
        "frames, too few frames, unusual proportions"
    )


class Timings(BaseModel):
    parse_ms: float
    derive_ms: float
    inference_ms: float
    total_ms: float


class ClassifyAnswer(BaseModel):
    model: str
    model_version: str
    predictions: list[Prediction]
    rate_asked: float | None
    tier: str | None
    rate_served: float
    mode: Mode
    observed_rate: float
    threshold: float | None
    kept_params: int
    backend: str
    cache_hit: bool
    degraded: bool
    chosen_by: ChosenBy
    timings: Timings


class ErrorBody(BaseModel):
    error: str


class TierRow(BaseModel):
    rate: float
    mode: str = Field("prior", description="the threshold mode of the row's network")
    tier: str | None
    accuracy: float | None = Field(None, description="percent, from the manifest's evaluation")
    observed_rate: float | None
    kept_params: int | None
    flops: int | None
    latency_ms: dict[str, float] | None = Field(
        None,
        description="measured on this server: compute p50 at batch 1 and 32 at start-up, and "
        "the p50 of the live inference histogram",
    )
    backend: str | None = Field(None, description="tiers: the backend that serves the tier")
    candidates_ms: dict[str, dict[str, float]] | None = Field(
        None, description="tiers: every candidate backend's start-up timings"
    )


class RatesAnswer(BaseModel):
    rate_range: list[float]
    default_tier: str
    tiers: dict[str, float]
    rates: list[TierRow]
    timings_missing: list[float]


class V2Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any] | None = None
    parameters: dict[str, Any] | None = None


class V2Output(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class V2InferBody(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = Field(
        None,
        description='serving options, as v1\'s fields: {"rate": 0.9} or {"tier": "fast"}, '
        '"mode", "allow_degrade", "max_latency_ms" or "min_accuracy"; the protocol\'s reserved '
        "parameters are accepted, typed (binary_data_output, sequence_id, sequence_start, "
        "sequence_end, priority, timeout, headers, triton_*); any other name is a 422",
    )
    inputs: list[V2Tensor] = Field(
        description='one tensor "skeleton", FP32 (or FP64), [batch, frames, joints, 3]: '
        + SEQUENCES[SEQUENCES.index("joints in") :]
    )
    outputs: list[V2Output] | None = None


class V2InferAnswer(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    parameters: dict[str, Any] = Field(
        description="what served the request (the v1 answer's fields), and `warnings`: a JSON "
        "string, the list of each sequence's warnings (as in v1's predictions)"
    )
    outputs: list[V2Tensor]


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its $defs substituted in place (for openapi_extra)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref is not None:
                return resolve(defs[ref.rsplit("/", 1)[-1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(model)}},
        }
    }
