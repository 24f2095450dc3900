"""Every refusal is its own error type, and its type alone (never its message) sets the HTTP
status and the `reason` label of mrmp_errors_total."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from mrmp.skeleton.descriptor import (
    NonFiniteSkeletonError,
    SkeletonNoExtentError,
    SkeletonOverflowError,
    SkeletonShapeError,
    SkeletonUnderflowError,
)
from mrmp.skeleton.missing import NoSkeletonError
from service import errors
from service.errors import ApiError
from tests.service_helpers import ready_client, sequence

# The contract: each condition's status and reason label (the label values dashboards use).
EXPECTED = {
    errors.MalformedJsonError: (400, "malformed_json"),
    errors.BadHeaderLengthError: (400, "malformed_json"),
    errors.MissingHeaderLengthError: (400, "malformed_json"),
    errors.BadEncodingError: (400, "bad_encoding"),
    errors.BodyTimeoutError: (408, "body_timeout"),
    errors.ClientClosedError: (499, "client_closed"),
    errors.UnknownModelError: (404, "no_model"),
    errors.UnknownEndpointError: (404, "not_found"),
    errors.MethodNotAllowedError: (405, "method_not_allowed"),
    errors.BodyTooLargeError: (413, "too_large"),
    errors.UnsupportedEncodingError: (415, "unsupported_encoding"),
    errors.InvalidRequestError: (422, "invalid_input"),
    errors.BadShapeError: (422, "bad_shape"),
    errors.NonFiniteError: (422, "non_finite"),
    errors.NoSkeletonError: (422, "no_skeleton"),
    errors.NoExtentError: (422, "no_extent"),
    errors.UnderflowError: (422, "underflow"),
    errors.TooShortError: (422, "too_short"),
    errors.UnknownFieldError: (422, "unknown_field"),
    errors.EmptyInputError: (422, "empty"),
    errors.TooLongError: (422, "too_long"),
    errors.TooManyError: (422, "too_many"),
    errors.BadTopKError: (422, "bad_top_k"),
    errors.BadIdError: (422, "bad_id"),
    errors.UnknownInputError: (422, "bad_input_name"),
    errors.UnsupportedDatatypeError: (422, "bad_datatype"),
    errors.UnknownParameterError: (422, "unknown_field"),
    errors.BadParameterError: (422, "bad_parameter"),
    errors.BadOutputError: (422, "bad_output"),
    errors.BadRateError: (422, "bad_rate"),
    errors.RateOutOfRangeError: (422, "bad_rate"),
    errors.ConflictingChoicesError: (422, "bad_rate"),
    errors.BadTierError: (422, "bad_tier"),
    errors.UnknownTierError: (422, "bad_tier"),
    errors.BadModeError: (422, "bad_mode"),
    errors.UnknownModeError: (422, "bad_mode"),
    errors.ModeConflictsWithNeedError: (422, "bad_mode"),
    errors.BadNeedError: (422, "bad_need"),
    errors.UnmetNeedError: (422, "unmet_need"),
    errors.BadDegradeError: (422, "bad_degrade"),
    errors.NotReadyError: (503, "not_ready"),
    errors.InternalError: (500, "internal"),
}


def test_every_error_type_carries_its_status_and_reason_whatever_its_message():
    declared = {c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, ApiError)}
    assert declared - {ApiError, errors.HttpError} == set(EXPECTED)
    for cls, (status, reason) in EXPECTED.items():
        for message in ("", "no rate here: unknown mode, NaN", "x" * 500):
            e = cls(message)
            assert (e.status, e.reason, e.message) == (status, reason, message)
    other = errors.HttpError("teapot", 418)
    assert (other.status, other.reason) == (418, "http")


@pytest.fixture(scope="module")
def client(synthetic_store: Path, tmp_path_factory: pytest.TempPathFactory):
    with ready_client(synthetic_store, tmp_path_factory.mktemp("errors"), onnx_tiers=False) as c:
        yield c


def _errors_total(client) -> dict[str, float]:
    families = text_string_to_metric_families(client.get("/metrics").text)
    family = next(f for f in families if f.name == "mrmp_errors")
    return {s.labels["reason"]: s.value for s in family.samples if s.name.endswith("_total")}


TINY = (np.random.default_rng(0).standard_normal((12, 30, 3)) * 1e-300).tolist()


def _body(**fields) -> bytes:
    return json.dumps({"sequences": [sequence(frames=4)], **fields}).encode()


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        ("/v1/classify", b"{", "malformed_json"),
        ("/v1/classify", _body(rates=1), "unknown_field"),
        ("/v1/classify", _body(rate="fast"), "bad_rate"),
        ("/v1/classify", _body(rate=2.0), "bad_rate"),
        ("/v1/classify", _body(rate=0.5, tier="fast"), "bad_rate"),
        ("/v1/classify", _body(tier="warp"), "bad_tier"),
        ("/v1/classify", _body(tier=3), "bad_tier"),
        ("/v1/classify", _body(mode="magic"), "bad_mode"),
        ("/v1/classify", _body(min_accuracy=0, mode="exact"), "bad_mode"),
        ("/v1/classify", _body(min_accuracy=101), "unmet_need"),
        ("/v1/classify", _body(max_latency_ms=-1), "bad_need"),
        ("/v1/classify", _body(allow_degrade=1), "bad_degrade"),
        ("/v1/classify", _body(top_k=0), "bad_top_k"),
        ("/v1/classify", b'{"sequences": []}', "empty"),
        ("/v1/classify", b'{"sequences": [[[[1, 2, 3]]]]}', "bad_shape"),
        ("/v1/classify", b'{"sequences": [[[[NaN, 2, 3]]]]}', "bad_shape"),  # 1 joint, not 30
        ("/v1/classify", json.dumps({"sequences": [[[[0, 0, 0]] * 30]]}).encode(), "no_skeleton"),
        ("/v1/classify", json.dumps({"sequences": [[[[1, 2, 3]] * 30]]}).encode(), "no_extent"),
        ("/v1/classify", json.dumps({"sequences": [TINY]}).encode(), "underflow"),
        ("/v2/models/other/infer", b"{}", "no_model"),
        ("/v2/models/synthetic-mrmp/infer", b'{"inputs": [{"name": "x"}]}', "bad_input_name"),
        ("/v2/models/synthetic-mrmp/infer", b'{"inputs": [], "id": 1}', "bad_id"),
        ("/v1/nothing", b"", "not_found"),
    ],
)
def test_each_refused_request_counts_its_reason(client, path, body, reason):
    before = _errors_total(client)
    r = client.post(path, content=body)
    assert 400 <= r.status_code < 500, r.text
    after = _errors_total(client)
    assert after.get(reason, 0) == before.get(reason, 0) + 1, (r.text, after)
    assert sum(after.values()) == sum(before.values()) + 1


@pytest.mark.parametrize(
    ("raised", "reason"),
    [
        (NonFiniteSkeletonError("coordinates out of this world"), "non_finite"),
        (SkeletonOverflowError("NaN or Inf"), "bad_shape"),  # the words of another condition
        (SkeletonUnderflowError("too large"), "underflow"),
        (SkeletonNoExtentError("underflow"), "no_extent"),
        (SkeletonShapeError("no extent"), "bad_shape"),
    ],
)
def test_descriptor_errors_are_mapped_by_type_not_by_words(client, monkeypatch, raised, reason):
    def refuse(*args, **kwargs):
        raise raised

    monkeypatch.setattr("service.describing.describe_batch", refuse)
    before = _errors_total(client)
    r = client.post("/v1/classify", content=_body())
    assert r.status_code == 422 and str(raised) in r.json()["error"]
    assert _errors_total(client)[reason] == before.get(reason, 0) + 1


def test_no_skeleton_is_mapped_by_type_not_by_words(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise NoSkeletonError("overflow: spread too small")

    monkeypatch.setattr("mrmp.skeleton.missing.fill_missing", refuse)
    before = _errors_total(client)
    r = client.post("/v1/classify", content=_body())
    assert r.status_code == 422
    assert r.json() == {"error": "sequence 0: overflow: spread too small"}
    assert _errors_total(client)["no_skeleton"] == before.get("no_skeleton", 0) + 1


def test_policy_errors_are_mapped_by_type_not_by_words(client, monkeypatch):
    def unmet(*args, **kwargs):
        raise errors.UnmetNeedError("unknown mode and unknown tier, rate outside")

    monkeypatch.setattr("service.policy.rate_for", unmet)
    before = _errors_total(client)
    r = client.post("/v1/classify", content=_body(min_accuracy=50))
    assert r.status_code == 422 and r.json() == {
        "error": "unknown mode and unknown tier, rate outside"
    }
    assert _errors_total(client)["unmet_need"] == before.get("unmet_need", 0) + 1


@pytest.mark.parametrize("word", ["true", "false"])
def test_a_boolean_coordinate_is_refused_naming_it_on_both_protocols(client, word: str):
    """JSON booleans are not numbers, though numpy would read them as 1 and 0."""
    frames = sequence(frames=12)
    frames[3][2][1] = 12345.5
    text = json.dumps({"sequences": [frames]}).replace("12345.5", word)
    r = client.post("/v1/classify", content=text)
    assert r.status_code == 422
    assert r.json()["error"].startswith(f"sequence 0, frame 3, joint 2, axis y: {word} is not")
    flat = np.asarray(sequence(frames=12), dtype=np.float32).reshape(-1).tolist()
    flat[5] = 12345.5
    v2 = {"inputs": [{"name": "skeleton", "shape": [1, 12, 30, 3], "datatype": "FP32"}]}
    v2["inputs"][0]["data"] = flat
    r = client.post(
        "/v2/models/synthetic-mrmp/infer", content=json.dumps(v2).replace("12345.5", word)
    )
    assert r.status_code == 422 and "is not a number" in r.json()["error"], r.text


# -- how a refusal quotes a value ----------------------------------------------------------------

_printable = st.text(st.characters(exclude_categories=["Cs"]))
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_subnormal=False) | _printable,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_printable, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=_json_values, width=st.integers(4, 80))
def test_a_value_is_quoted_as_json_within_its_width(value, width):
    text = errors.shown(value, width)
    assert len(text) <= width
    written = json.dumps(value, ensure_ascii=False)
    if len(written) <= width:
        assert text == written
    else:
        assert text.endswith("...") and written.startswith(text[:-3])


def test_any_nesting_and_size_is_quoted_at_once():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert errors.shown(deep) == "[" * 37 + "..."
    assert errors.shown(list(range(10**6))) == "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11..."
