"""Whatever a client sends, the answer is never a 5xx (hypothesis-generated bodies)."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.decoding import MAX_CODINGS
from tests.service_helpers import ready_client

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False),
    st.text(max_size=5),
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)
coordinate = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False), st.integers(), scalars
)
joint = st.lists(coordinate, min_size=0, max_size=4)
frame = st.one_of(st.lists(joint, min_size=29, max_size=31), st.lists(joint, max_size=3))
# Regular (T, 30, 3) sequences of joints missing, tiny, huge or at one point.
special_joint = st.sampled_from(
    [[0, 0, 0], [0.0, -0.0, 0.0], [1, 2, 3], [1e-300, 0, 1e-300], [5e-320, 1e-310, 0], [1e300] * 3]
)
regular = st.integers(1, 12).flatmap(
    lambda t: st.lists(st.lists(special_joint, min_size=30, max_size=30), min_size=t, max_size=t)
)
sequence = st.one_of(st.lists(frame, max_size=3), regular)
classify_bodies = st.fixed_dictionaries(
    {"sequences": st.one_of(st.lists(sequence, max_size=3), json_values)},
    optional={
        "rate": st.one_of(st.floats(-2, 2, allow_subnormal=False), st.just("auto"), json_values),
        "tier": st.one_of(st.sampled_from(["fast", "balanced", "x"]), json_values),
        "mode": st.one_of(st.sampled_from(["prior", "exact", "y"]), json_values),
        "top_k": st.one_of(st.integers(-3, 20), json_values),
        "allow_degrade": json_values,
    },
)
tensor = st.fixed_dictionaries(
    {
        "name": st.one_of(st.just("skeleton"), st.text(max_size=4)),
        "shape": st.one_of(st.lists(st.integers(-1, 31), max_size=5), json_values),
        "datatype": st.one_of(st.sampled_from(["FP32", "FP64", "INT8", "BYTES"]), json_values),
    },
    optional={
        "data": st.one_of(
            st.lists(coordinate, max_size=200), st.lists(special_joint, max_size=90), json_values
        )
    },
)
infer_bodies = st.fixed_dictionaries(
    {"inputs": st.one_of(st.lists(tensor, max_size=2), json_values)},
    optional={
        "id": json_values,
        "parameters": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    name: json_values
                    for name in (
                        "rate",
                        "tier",
                        "Rate",
                        "binary_data_output",
                        "sequence_id",
                        "priority",
                        "timeout",
                        "headers",
                        "triton_x",
                    )
                },
            ),
            json_values,
        ),
        "outputs": json_values,
    },
)


@pytest.fixture(scope="module")
def client(synthetic_store: Path, tmp_path_factory: pytest.TempPathFactory):
    with ready_client(synthetic_store, tmp_path_factory.mktemp("fuzz"), onnx_tiers=False) as c:
        yield c


def _post(client, path: str, body) -> None:
    r = client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code < 500, (body, r.text)
    assert "error" in r.json() or r.status_code == 200


fuzz = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@fuzz
@given(body=st.one_of(classify_bodies, json_values))
def test_classify_never_answers_5xx(client, body):
    _post(client, "/v1/classify", body)


@fuzz
@given(body=st.one_of(infer_bodies, json_values))
def test_v2_infer_never_answers_5xx(client, body):
    _post(client, "/v2/models/synthetic-mrmp/infer", body)


@fuzz
@given(raw=st.binary(max_size=200))
def test_raw_bytes_never_answer_5xx(client, raw):
    r = client.post("/v1/classify", content=raw)
    assert r.status_code < 500


# Content-Encoding: what the body is encoded with, and what the header claims.
ENCODERS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "identity": lambda b: b,
    "truncated gzip": lambda b: gzip.compress(b)[: len(b) // 2],
}
claimed = st.one_of(
    st.sampled_from(["gzip", "deflate", "identity", "br", "zstd", "gzip, deflate", "GZIP"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz-, ", max_size=12),
)


@fuzz
@given(
    body=st.one_of(classify_bodies, infer_bodies, json_values),
    encoder=st.sampled_from(sorted(ENCODERS)),
    encoding=claimed,
    v2=st.booleans(),
)
def test_encoded_bodies_never_answer_5xx(client, body, encoder, encoding, v2):
    path = "/v2/models/synthetic-mrmp/infer" if v2 else "/v1/classify"
    r = client.post(
        path,
        content=ENCODERS[encoder](json.dumps(body).encode()),
        headers={"content-type": "application/json", "content-encoding": encoding},
    )
    assert r.status_code < 500, (body, encoding, r.text)
    assert "error" in r.json() or r.status_code == 200
    codings = [c.strip().lower() for c in encoding.split(",")]
    codings = [c for c in codings if c not in ("", "identity")]
    unsupported = set(codings) - {"gzip", "deflate"} or len(codings) > MAX_CODINGS
    assert (r.status_code == 415) == bool(unsupported)
