"""The lean request path (issue 18): JSON number arrays decoded straight into arrays, only
when the body is well formed (any other body decodes exactly as before, so its refusal is the
same), and the request's sequences described as one batch, equal to describing each alone."""

from __future__ import annotations

import json
import re

import numpy as np
import orjson
import pytest

from service.decoding import decode_json
from service.json_arrays import decode_json_arrays
from tests.service_helpers import sequence

SEQ = sequence(frames=5, joints=4)


def _v1(sequences: object, **extra: object) -> bytes:
    return json.dumps({"sequences": sequences, "rate": 0.9, **extra}).encode()


def _fast(body: bytes) -> object:
    return decode_json_arrays(body, ("sequences",), ndims=(3,), each=True)


def test_well_formed_sequences_come_as_float64_arrays_equal_to_the_lists():
    other = sequence(frames=3, joints=4, seed=1)
    body = _v1([SEQ, other], tier="fast", allow_degrade=True, top_k=2)
    data = _fast(body)
    plain = orjson.loads(body)
    assert {k: v for k, v in data.items() if k != "sequences"} == {
        k: v for k, v in plain.items() if k != "sequences"
    }
    assert [a.dtype for a in data["sequences"]] == [np.float64] * 2
    for got, want in zip(data["sequences"], plain["sequences"], strict=True):
        np.testing.assert_array_equal(got, np.array(want))


def test_blanks_integers_and_exponents_are_numbers_too():
    body = b'{ "sequences" : [ [ [ [1, -2 , 3e2] ,\n [0.5,1E-3,-0] ] ] ] }'
    (arr,) = _fast(body)["sequences"]
    np.testing.assert_array_equal(arr, [[[1, -2, 300], [0.5, 1e-3, 0]]])


@pytest.mark.parametrize(
    "body",
    [
        _v1([[[[1, 2, 3], [4, 5]]]]),  # ragged joints
        _v1([[[[1, 2, 3], [4, 5, 6, 7]]]]),  # ragged, same count in all
        _v1([[[[1, 2, 3]], [[4, 5, 6], [7, 8, 9]]]]),  # ragged frames
        _v1([[[[1, 2, [3]], [4, 5, 6]]]]),  # too deep, same count of numbers
        _v1([[[[1, 2, 3], [4, [], 5, 6]]]]),  # an empty list where a number belongs
        _v1([[[1, 2, 3], [4, 5, 6]]]),  # too shallow
        _v1([[[[1, None, 3]]]]),
        _v1([[[[1, True, 3]]]]),
        _v1([[[[1, "2", 3]]]]),
        _v1([[]]),
        _v1([]),
        _v1([[[[1, 2, 3]]]], tier="sequences"),  # the key's text written twice
        _v1([[[[1, 2, 3]]]], tier='"\\u0041"'),  # an escape
        _v1([[[[1, 2, 10**30]]]]),  # beyond an int64
        b'{"sequences": [[[[1, 2, NaN]]]]}',
        b'{"sequences": [[[[1, 2, 1e400]]]]}',
        b'{"sequences": [[[[1, 2, 3]]]], "sequences": [[[[1, 2, 3]]]]}',
        b'{"sequences": 3}',
        b'{"sequences": [[[[1, 2, 3]]]], "rate": 1, "rate": 2}',  # orjson keeps the last
        b'[{"sequences": [[[[1, 2, 3]]]]}]',
        b'{"sequences": [[[[1, 2, 3]]]]',
    ],
)
def test_any_other_body_decodes_as_before(body):
    try:
        want = decode_json(body)
    except Exception as e:  # the refusal itself must be the same
        with pytest.raises(type(e), match="^" + re.escape(str(e)) + "$"):
            _fast(body)
        return
    # Lists, as before (json.dumps refuses an ndarray; NaN is equal by its text).
    assert json.dumps(_fast(body), sort_keys=True) == json.dumps(want, sort_keys=True)


def test_the_other_fields_keep_their_json_values():
    body = b'{"mode": "[[", "sequences": [[[[1, 2, 3]]]], "rate": [[[1, 2]]], "top_k": {"a": null}}'
    data = _fast(body)
    assert data["rate"] == [[[1, 2]]] and data["top_k"] == {"a": None} and data["mode"] == "[["
    assert isinstance(data["sequences"][0], np.ndarray)


def test_v2_data_is_one_array_flat_or_nested():
    flat = [v for frame in SEQ for joint in frame for v in joint]
    for data, shape in ((flat, (60,)), ([SEQ], (1, 5, 4, 3))):
        body = json.dumps({"inputs": [{"name": "skeleton", "data": data}]}).encode()
        got = decode_json_arrays(body, ("inputs", 0, "data"), ndims=(1, 3, 4), each=False)
        arr = got["inputs"][0]["data"]
        assert arr.shape == shape
        np.testing.assert_array_equal(arr.reshape(-1), np.array(flat))
