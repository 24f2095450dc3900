"""The lean request path (issue 18): JSON number arrays decoded straight into arrays, only
when the body is well formed (any other body decodes exactly as before, so its refusal is the
same), and the request's sequences described as one batch, equal to describing each alone."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import orjson
import pytest

from bench import request_path
from mrmp.skeleton import DescriptorConfig, describe, describe_batch
from mrmp.skeleton.descriptor import (
    NonFiniteSkeletonError,
    SkeletonNoExtentError,
    SkeletonOverflowError,
    SkeletonShapeError,
)
from mrmp.skeleton.proportions import bone_shares, bone_shares_batch
from mrmp.store import read_manifest
from service.decoding import decode_json
from service.describing import describe_request
from service.errors import NoExtentError, TooShortError
from service.input_rules import InputRules
from service.json_arrays import decode_json_arrays
from service.settings import Settings
from tests.conftest import needs_data
from tests.service_helpers import sequence
from training.datasets import data_root, load_sbu

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
        _v1([[[[1, {"x": 2}, 3]]]]),
        b'{"sequences": [[[[1, 2, 3]]]], "s1equences": 1}',  # a key alike once numbers are gone
        _v1([[[[1, True, 3]]]]),
        _v1([[[[1, "2", 3]]]]),
        _v1([[]]),
        _v1([]),
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
    body = (
        b'{"mode": "[[", "tier": "sequences", "sequences": [[[[1, 2, 3]]]], "rate": [[[1, 2]]], '
        b'"top_k": {"a": null}}'
    )
    data = _fast(body)
    assert data["rate"] == [[[1, 2]]] and data["top_k"] == {"a": None} and data["mode"] == "[["
    assert data["tier"] == "sequences"
    assert isinstance(data["sequences"][0], np.ndarray)


def test_v2_data_is_one_array_flat_or_nested():
    flat = [v for frame in SEQ for joint in frame for v in joint]
    for data, shape in ((flat, (60,)), ([SEQ], (1, 5, 4, 3))):
        body = json.dumps({"inputs": [{"name": "skeleton", "data": data}]}).encode()
        got = decode_json_arrays(body, ("inputs", 0, "data"), ndims=(1, 3, 4), each=False)
        arr = got["inputs"][0]["data"]
        assert arr.shape == shape
        np.testing.assert_array_equal(arr.reshape(-1), np.array(flat))


DESCRIPTORS = [
    DescriptorConfig(chunks=4, root_joint=(2, 17)),
    DescriptorConfig(chunks=7, velocity=True, root_joint=(0, 15), local_frame=(0, 1, 2)),
    DescriptorConfig(chunks=3, axis_scale=(1.0, 2.0, 0.5), velocity=True),
]


@needs_data
@pytest.mark.parametrize("config", DESCRIPTORS)
def test_describing_a_batch_equals_describing_each_sequence(config):
    seqs = load_sbu(data_root()).sequences[:64]  # frame counts 10 to 46
    assert len({len(s) for s in seqs}) > 5
    each = np.stack([describe(s, config, 30) for s in seqs])
    np.testing.assert_array_equal(describe_batch(seqs, config, 30), each)


@pytest.mark.parametrize(
    ("bad", "error", "index"),
    [
        ([np.full((3, 4, 3), 1e200) * np.arange(3)[:, None, None], None], SkeletonOverflowError, 1),
        ([np.full((3, 4, 3), np.nan), np.full((3, 4, 3), 1e200)], NonFiniteSkeletonError, 1),
        ([np.ones((3, 4, 3)), np.zeros((2, 4, 3))], SkeletonNoExtentError, 1),
        ([np.ones((3, 5, 3)), np.ones((3, 4, 3))], SkeletonShapeError, 1),
    ],
)
def test_a_batch_refuses_its_first_refused_sequence_by_its_index(bad, error, index):
    good = np.asarray(sequence(frames=4, joints=4, seed=2))
    seqs = [good, *(b for b in bad if b is not None)]
    with pytest.raises(error, match=f"^sequence {index}: "):
        describe_batch([*seqs, np.full((2, 4, 3), np.nan)])


@needs_data
def test_the_input_rules_over_a_batch_equal_them_over_each_sequence():
    store = Path(__file__).parents[1] / "model_store" / "sbu-mrmp"
    rules = InputRules.of(read_manifest(store), Settings(model_path=store, min_frames=20))
    assert rules.shares is not None
    rng = np.random.default_rng(0)
    seqs = [s.astype(np.float64) for s in load_sbu(data_root()).sequences[:48]]
    for s in seqs[::3]:  # some joints and frames missing, some bones stretched
        s[rng.integers(len(s)), :15] = 0.0
        s[:, rng.integers(30)] = 0.0
    seqs[5][:, 4] *= 3.0
    batch = rules.apply_all(seqs)
    assert batch.refusal is None
    codes = {w["code"] for ws in batch.warnings for w in ws}
    assert {"missing_joints", "few_frames", "unusual_proportions"} <= codes
    for i, s in enumerate(seqs):
        one = rules.apply_all([s])
        assert one.warnings[0] == batch.warnings[i]
        np.testing.assert_array_equal(one.sequences[0], batch.sequences[i])
    shares = bone_shares_batch(batch.sequences, rules.shares.bones, 30, 2)
    for i, s in enumerate(batch.sequences):
        np.testing.assert_array_equal(bone_shares(s, rules.shares.bones, 30, 2), shares[i])


def test_a_refused_sequence_comes_after_an_earlier_one_the_descriptor_refuses(synthetic_store):
    manifest = read_manifest(synthetic_store)
    settings = Settings(model_path=synthetic_store, min_frames=3, refuse_short=True)
    rules = InputRules.of(manifest, settings)
    good = np.asarray(sequence(frames=6))
    flat = np.ones((6, 30, 3))  # no spatial extent
    short = good[:2]
    shape = manifest.descriptor_config, 30, (30, manifest.descriptor_config.feature_dim())
    with pytest.raises(NoExtentError, match=r"^sequence 1: "):
        describe_request([good, flat, short], rules, *shape)
    with pytest.raises(TooShortError, match=r"^sequence 1: "):
        describe_request([good, short, flat], rules, *shape)
    x, warnings = describe_request([good, good[:4]], rules, *shape)
    np.testing.assert_array_equal(x[1], describe(good[:4], manifest.descriptor_config, 30))
    assert warnings == [[], []]


def test_the_request_path_benchmark_measures_every_stage(synthetic_store, tmp_path):
    result = request_path.run(synthetic_store, tmp_path, repeats=1)
    assert json.loads((tmp_path / "request_path.json").read_text()) == result
    for body, stages in result["stages"].items():
        assert stages and all(us > 0 for us in stages.values()), body


def test_a_sequences_shares_do_not_depend_on_its_batch_or_dtype():
    # A V2 FP32 tensor's sequences may share a batch with v1's float64 ones.
    x = np.random.default_rng(3).standard_normal((9, 30, 3)).astype(np.float32)
    y = np.random.default_rng(4).standard_normal((12, 30, 3))
    bones = [(0, 1), (1, 2), (15, 16), (16, 17)]
    alone = bone_shares_batch([x], bones, 30, 2)
    np.testing.assert_array_equal(bone_shares_batch([x, y], bones, 30, 2)[:1], alone)
    np.testing.assert_array_equal(bone_shares(x.astype(np.float64), bones, 30, 2), alone[0])


@pytest.mark.parametrize("frames", [1, 2, 7, 45, 46])
def test_the_shares_are_the_median_over_frames_odd_or_even(frames):
    x = np.random.default_rng(frames).standard_normal((frames, 30, 3))
    bones = [(0, 1), (1, 2), (2, 3), (15, 16), (16, 17)]
    a, b = np.array(bones).T
    lengths = np.linalg.norm(x[:, a] - x[:, b], axis=-1)
    totals = np.stack([lengths[:, :3].sum(1)] * 3 + [lengths[:, 3:].sum(1)] * 2, axis=1)
    want = np.median(lengths / totals, axis=0)
    np.testing.assert_allclose(bone_shares(x, bones, 30, 2), want, rtol=1e-15)
