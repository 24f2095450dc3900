"""The v1 API: classify (v1 JSON in and out of the data plane), the model's public description,
and the rate table."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response

from mrmp.rates import MODES
from service.dataplane import Answer, InferenceRequest
from service.decoding import (
    ASK_FIELDS,
    check_count,
    check_frames,
    decode_ask,
    json_object,
    numeric,
    read_body,
    reject_unknown,
)
from service.dependencies import HostDep, PlaneDep, SettingsDep
from service.errors import BadShapeError, BadTopKError, shown
from service.host import ModelHost
from service.http_methods import serve_head_where_get
from service.json_arrays import decode_json_arrays
from service.responses import ERROR_RESPONSES, json_response
from service.schemas import ClassifyAnswer, ClassifyBody, RatesAnswer, request_body
from service.settings import Settings

router = APIRouter(prefix="/v1", tags=["v1"])

EMPTY_ANSWER = Response(b"{}", media_type="application/json")
CLASSIFY_FIELDS = {"sequences", "top_k", *ASK_FIELDS}


@dataclass(frozen=True)
class ClassifyRequest:
    request: InferenceRequest
    top_k: int  # already capped by the class count and max_top_k


def decode_classify(data: Any, started: float, settings: Settings, classes: int) -> ClassifyRequest:
    """A classify body: sequences (each T x J x 3 nested lists), top_k and the serving fields."""
    data = json_object(data, "the request body")
    reject_unknown(data, CLASSIFY_FIELDS, "the request body")
    if "sequences" not in data:
        raise BadShapeError("missing field: sequences (a list of T x J x 3 nested lists)")
    seqs = data["sequences"]
    if not isinstance(seqs, list):
        raise BadShapeError("sequences must be a list of T x J x 3 nested lists")
    check_count(len(seqs), settings.max_sequences)
    ask = decode_ask(data)
    top_k = data.get("top_k")
    if top_k is None:  # null is absent, as for every optional field
        top_k = 3
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise BadTopKError(f"top_k must be a positive integer, got {shown(top_k)}")
    arrays = []
    for i, seq in enumerate(seqs):
        where = f"sequence {i}"
        if not isinstance(seq, list | np.ndarray):
            raise BadShapeError(f"{where} must be a list of frames (T x J x 3)")
        check_frames(len(seq), settings.max_frames, where)
        arrays.append(numeric(seq, where))
    return ClassifyRequest(
        InferenceRequest(arrays, ask, started), min(top_k, classes, settings.max_top_k)
    )


def decode_body(body: bytes) -> Any:
    """A classify body's JSON, each sequence a (T, J, 3) float64 array when the body is
    well formed (nested lists otherwise, for decode_classify to name the fault)."""
    return decode_json_arrays(body, ("sequences",), ndims=(3,), each=True)


def encode_classify(answer: Answer, top_k: int, host: ModelHost) -> dict[str, object]:
    probs = answer.probabilities()
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
    # Python ints and floats in one call each, not a numpy scalar per item.
    scores = np.take_along_axis(probs, order, axis=1).astype(np.float64).tolist()
    names = host.class_names
    predictions = []
    for row, idx, warnings in zip(scores, order.tolist(), answer.warnings, strict=True):
        top = [
            {"label": names[i], "class_index": i, "score": score}
            for i, score in zip(idx, row, strict=True)
        ]
        predictions.append({**top[0], "top_k": top, "warnings": warnings})
    choice = answer.choice
    return {
        "model": host.name,
        "model_version": host.version,
        "predictions": predictions,
        "rate_asked": choice.rate_asked,
        "tier": answer.tier,
        **answer.served_fields(),
        "degraded": choice.degraded_from is not None,
        "chosen_by": choice.chosen_by,
    }


@router.post(
    "/classify",
    response_model=ClassifyAnswer,
    responses=ERROR_RESPONSES,
    openapi_extra=request_body(ClassifyBody),
)
async def classify(
    request: Request, host: HostDep, plane: PlaneDep, settings: SettingsDep
) -> Response:
    """Classify skeleton sequences with the network pruned at the asked rate (or tier)."""
    started = time.perf_counter()
    body = await read_body(request, settings.max_body_bytes, settings.body_timeout_s)
    req = decode_classify(decode_body(body), started, settings, len(host.class_names))
    answer = await plane.infer(req.request)
    encoded = encode_classify(answer, req.top_k, host)
    encoded["timings"] = {
        "parse_ms": round(answer.prepare_s * 1e3, 3),
        "derive_ms": round(answer.derive_s * 1e3, 3),
        "inference_ms": round(answer.inference_s * 1e3, 3),
        "total_ms": round((time.perf_counter() - started) * 1e3, 3),
    }
    return json_response(encoded)


@router.post("/ping", responses={200: {"content": {"application/json": {"example": {}}}}})
async def ping() -> Response:
    """Does nothing: the round trip of an empty POST through this server, its routing and its
    middleware (the floor `bench/http.py` reports latency against)."""
    return EMPTY_ANSWER


@router.get("/model")
async def model_info(host: HostDep, plane: PlaneDep, settings: SettingsDep) -> Response:
    """The manifest's public part: classes, the input contract (layout: joints, persons,
    bones, coordinate frame; input: units, position, missing joints, min_frames), rate range,
    seen rates, tiers."""
    m = host.manifest
    return json_response(
        {
            "name": host.name,
            "version": host.version,
            "dataset": m.dataset,
            "class_names": host.class_names,
            "layout": m.layout.model_dump(),
            "input": plane.rules.public(),
            "descriptor": m.descriptor,
            "method": m.method,
            "prior": m.prior,
            "params": m.params,
            "rate_range": list(host.policy.rate_range),
            "seen_rates": m.seen_rates,
            "modes": list(MODES),
            "tiers": dict(host.policy.tiers),
            "default_tier": settings.default_tier,
            "evaluation_protocol": m.evaluation.protocol,
            "limits": {
                "max_sequences": settings.max_sequences,
                "max_frames": settings.max_frames,
                "max_body_bytes": settings.max_body_bytes,
            },
        }
    )


@router.get("/rates", response_model=RatesAnswer)
async def rates(host: HostDep, settings: SettingsDep) -> Response:
    """The tier table: per rate, held-out accuracy, observed rate, kept parameters, FLOPs and
    latency measured on this server; `timings_missing` lists the rates not timed yet (until
    the model is ready, inference is refused with 503)."""
    return json_response(
        {
            "rate_range": list(host.policy.rate_range),
            "default_tier": settings.default_tier,
            "tiers": dict(host.policy.tiers),
            "rates": host.table.answer(host.metrics.live_p50()),
            "timings_missing": host.table.untimed(),
        }
    )


serve_head_where_get(router)
