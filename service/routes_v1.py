"""The v1 API: classify, the model's public description, and the tier table."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import orjson
from fastapi import APIRouter, Request, Response

from service.host import ModelHost, Result
from service.parsing import decode_json, parse_classify, read_body
from service.schemas import ClassifyAnswer, ClassifyBody, ErrorBody, RatesAnswer, request_body

router = APIRouter(prefix="/v1", tags=["v1"])

ERRORS: dict[int | str, dict[str, object]] = {s: {"model": ErrorBody} for s in (400, 413, 422, 503)}


def json_response(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


EMPTY_ANSWER = Response(b"{}", media_type="application/json")


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def served_fields(result: Result) -> dict[str, object]:
    """What served a request: the same fields in v1 answers and V2 parameters."""
    s = result.served
    return {
        "rate_served": s.rate,
        "mode": s.key[1],
        "observed_rate": round(s.derivation.observed_rate, 6),
        "threshold": s.derivation.prior_threshold if s.key[1] == "prior" else None,
        "kept_params": s.derivation.kept_params,
        "backend": s.runner.backend,
        "cache_hit": result.cache_hit,
    }


@router.post(
    "/classify",
    response_model=ClassifyAnswer,
    responses=ERRORS,
    openapi_extra=request_body(ClassifyBody),
)
async def classify(request: Request) -> Response:
    """Classify skeleton sequences with the network pruned at the asked rate (or tier)."""
    t0 = time.perf_counter()
    state = request.app.state
    host: ModelHost = state.host
    body = await read_body(request, state.settings.max_body_bytes)
    req = parse_classify(decode_json(body), host, state.settings)
    t1 = time.perf_counter()
    await asyncio.sleep(0)  # let queued requests start, so the in-flight count sees them
    opts = host.degrade(req.options, state.metrics.active)
    result = host.infer(req.x, opts.rate, opts.mode)
    probs = softmax(result.logits)
    order = np.argsort(-probs, axis=1, kind="stable")[:, : req.top_k]
    names = host.class_names
    predictions = []
    for row, idx in zip(probs, order, strict=True):
        top = [{"label": names[i], "class_index": int(i), "score": float(row[i])} for i in idx]
        predictions.append({**top[0], "top_k": top})
    host.record_observed(result.served)
    answer = {
        "model": host.name,
        "model_version": host.version,
        "predictions": predictions,
        "rate_asked": opts.rate_asked,
        "tier": host.tier_of(result.served.key),
        **served_fields(result),
        "degraded": opts.degraded_from is not None,
        "chosen_by": opts.chosen_by,
        "timings": {
            "parse_ms": round((t1 - t0) * 1e3, 3),
            "derive_ms": round(result.derive_s * 1e3, 3),
            "inference_ms": round(result.inference_s * 1e3, 3),
            "total_ms": round((time.perf_counter() - t0) * 1e3, 3),
        },
    }
    return json_response(answer)


@router.post("/ping", responses={200: {"content": {"application/json": {"example": {}}}}})
async def ping() -> Response:
    """Does nothing: the round trip of an empty POST through this server, its routing and its
    middleware (the floor `bench/http.py` reports latency against)."""
    return EMPTY_ANSWER


@router.get("/model")
async def model_info(request: Request) -> Response:
    """The manifest's public part: classes, input layout, rate range, seen rates, tiers."""
    host: ModelHost = request.app.state.host
    settings = request.app.state.settings
    m = host.manifest
    return json_response(
        {
            "name": host.name,
            "version": host.version,
            "dataset": m.dataset,
            "class_names": host.class_names,
            "layout": m.layout.model_dump(),
            "descriptor": m.descriptor,
            "method": m.method,
            "prior": m.prior,
            "params": m.params,
            "rate_range": [host.rate_min, host.rate_max],
            "seen_rates": m.seen_rates,
            "modes": ["prior", "exact"],
            "tiers": settings.tiers,
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
async def rates(request: Request) -> Response:
    """The tier table: per rate, held-out accuracy, observed rate, kept parameters, FLOPs and
    latency measured on this server."""
    host: ModelHost = request.app.state.host
    settings = request.app.state.settings
    return json_response(
        {
            "rate_range": [host.rate_min, host.rate_max],
            "default_tier": settings.default_tier,
            "tiers": settings.tiers,
            "rates": host.rate_table(),
        }
    )
