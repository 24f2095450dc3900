"""Input that is not what the model knows, over HTTP: missing detections answered with warnings
that name what was missing (v1 predictions, V2 parameters), the refusals of input that cannot be
described (no skeleton, no extent, underflow, overflow, too short when so set), and the input
contract in /v1/model, the V2 metadata and the OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mrmp.manifest import Manifest
from mrmp.skeleton import SBU_LAYOUT
from mrmp.skeleton.proportions import bone_name, bone_shares, person_bones
from mrmp.store import load_model
from tests.service_helpers import ready_client

NAMES = SBU_LAYOUT.joint_names
HANDS = [NAMES.index(f"{p}_{s}_HAND") for p in "AB" for s in ("LEFT", "RIGHT")]


@pytest.fixture(scope="module")
def client(synthetic_store: Path, tmp_path_factory: pytest.TempPathFactory):
    with ready_client(synthetic_store, tmp_path_factory.mktemp("warn"), onnx_tiers=False) as c:
        yield c


def _skeleton(frames: int = 12, seed: int = 0) -> np.ndarray:
    """A (T, 30, 3) sequence in camera millimetres, every joint observed."""
    rng = np.random.default_rng(seed)
    return rng.uniform(200.0, 2500.0, size=(frames, 30, 3))


def _classify(client, *seqs: np.ndarray):
    return client.post("/v1/classify", json={"sequences": [s.tolist() for s in seqs]})


def _infer(client, name: str, *seqs: np.ndarray):
    x = np.stack(seqs).astype(np.float32)
    tensor = {"name": "skeleton", "datatype": "FP32", "shape": list(x.shape)}
    return client.post(
        f"/v2/models/{name}/infer", json={"inputs": [{**tensor, "data": x.ravel().tolist()}]}
    )


def _v1_warnings(client, *seqs: np.ndarray) -> list[list[dict]]:
    r = _classify(client, *seqs)
    assert r.status_code == 200, r.text
    return [p["warnings"] for p in r.json()["predictions"]]


def _v2_warnings(client, *seqs: np.ndarray) -> list[list[dict]]:
    r = _infer(client, "synthetic-mrmp", *seqs)
    assert r.status_code == 200, r.text
    return json.loads(r.json()["parameters"]["warnings"])


def _person_b_gone() -> np.ndarray:
    x = _skeleton(frames=15)
    x[:, 15:] = 0.0
    return x


def _every_third_frame_gone() -> np.ndarray:
    x = _skeleton(frames=15)
    x[::3] = 0.0
    return x


def _hands_gone() -> np.ndarray:
    x = _skeleton(frames=15)
    x[:, HANDS] = 0.0
    return x


def test_a_clean_answer_has_no_warnings(client):
    assert _v1_warnings(client, _skeleton(), _skeleton(seed=1)) == [[], []]
    assert _v2_warnings(client, _skeleton(), _skeleton(seed=1)) == [[], []]


@pytest.mark.parametrize("warnings_of", [_v1_warnings, _v2_warnings], ids=["v1", "v2"])
def test_zero_filled_input_is_answered_with_warnings_naming_what_is_missing(client, warnings_of):
    clean, person, frames, hands = warnings_of(
        client, _skeleton(frames=15), _person_b_gone(), _every_third_frame_gone(), _hands_gone()
    )
    assert clean == []
    [w] = person
    assert w["code"] == "missing_persons" and w["persons"] == [1]
    assert "person 1 (B_HEAD to B_RIGHT_FOOT)" in w["message"]
    [w] = frames
    assert (w["code"], w["dropped"], w["frames"]) == ("dropped_frames", 5, 15)
    assert "5 of 15 frame(s)" in w["message"]
    [w] = hands
    assert w["code"] == "missing_joints" and w["partial"] == []
    assert w["absent"] == ["A_LEFT_HAND", "A_RIGHT_HAND", "B_LEFT_HAND", "B_RIGHT_HAND"]
    assert all(name in w["message"] for name in w["absent"])


def test_joints_missing_in_some_frames_are_named_as_partial(client):
    x = _skeleton()
    x[3:6, NAMES.index("A_HEAD")] = 0.0
    [[w]] = _v1_warnings(client, x)
    assert w["code"] == "missing_joints" and (w["absent"], w["partial"]) == ([], ["A_HEAD"])
    assert "interpolated: A_HEAD" in w["message"]


def test_filled_input_is_described_as_the_core_rule_fills_it(client):
    """The answer to a zero-filled sequence is the answer to its filled version."""
    from mrmp.skeleton.missing import fill_missing

    x = _hands_gone()
    filled, _ = fill_missing(x, 2, SBU_LAYOUT.bones)
    a, b = (r.json()["predictions"] for r in (_classify(client, x), _classify(client, filled)))
    assert a[0]["top_k"] == b[0]["top_k"]
    # The filled skeleton has nothing missing (its zero-length forearms are unusual proportions).
    codes = {w["code"] for w in b[0]["warnings"]}
    assert not codes & {"missing_joints", "missing_persons", "dropped_frames"}


def test_no_skeleton_is_refused_naming_the_sequence(client):
    r = _classify(client, _skeleton(), _skeleton(), np.zeros((12, 30, 3)))
    assert r.status_code == 422
    assert r.json()["error"].startswith("sequence 2: no skeleton: every joint of all 12 frame(s)")
    r = _infer(client, "synthetic-mrmp", _skeleton(), np.zeros((12, 30, 3)))
    assert r.status_code == 422 and r.json()["error"].startswith("sequence 1: no skeleton")


def test_frameless_and_jointless_sequences_stay_refused(client):
    r = client.post("/v1/classify", json={"sequences": [_skeleton().tolist(), []]})
    assert r.status_code == 422 and "sequence 1 has no frames" in r.json()["error"]
    r = client.post("/v1/classify", json={"sequences": [[[], [], []]]})  # (3, 0): no joints
    assert r.status_code == 422 and "sequence 0" in r.json()["error"]
    r = _infer(client, "synthetic-mrmp", np.zeros((4, 0, 3)))
    assert r.status_code == 422 and "expected [batch, frames, 30, 3]" in r.json()["error"]
    r = _infer(client, "synthetic-mrmp", np.zeros((0, 30, 3)))
    assert r.status_code == 422 and "no frames" in r.json()["error"]


@pytest.mark.parametrize(
    ("scale", "words"),
    [
        (1e200, "too large to normalize (overflow)"),
        (1e-160, "too small to normalize (underflow)"),
        (1e-300, "too small to normalize (underflow)"),
    ],
)
def test_numbers_that_overflow_or_vanish_are_refused_naming_the_sequence(client, scale, words):
    x = _skeleton() - 1000.0  # coordinates about 0: the spread scales with `scale`
    r = _classify(client, _skeleton(), x * scale)
    assert r.status_code == 422 and r.json()["error"].startswith("sequence 1: "), r.text
    assert words in r.json()["error"]
    # Any other unit serves: micrometres or kilometres, the same answer.
    small, large = (_classify(client, x * s).json()["predictions"][0] for s in (1e-6, 1e3))
    assert small["class_index"] == large["class_index"]
    assert small["score"] == pytest.approx(large["score"], abs=1e-5)


def test_a_skeleton_with_no_extent_is_refused(client):
    x = np.broadcast_to(np.array([300.0, 200.0, 2500.0]), (12, 30, 3))
    r = _classify(client, x)
    assert r.status_code == 422 and r.json()["error"] == (
        "sequence 0: no spatial extent: every joint of every frame is at one point"
    )
    # One joint observed: the others are filled onto it, and that is no skeleton either.
    one = np.zeros((12, 30, 3))
    one[:, 4] = x[:, 4]
    r = _infer(client, "synthetic-mrmp", _skeleton(), one)
    assert r.status_code == 422 and r.json()["error"].startswith("sequence 1: no spatial extent")


def test_nan_is_missing_when_so_set(synthetic_store, tmp_path):
    x = _skeleton()
    x[4, 7, 1] = np.nan
    body = json.dumps({"sequences": [x.tolist()]})  # NaN as JSON's NaN token
    with ready_client(synthetic_store, tmp_path, onnx_tiers=False, missing_nan=True) as c:
        r = c.post("/v1/classify", content=body)
        assert r.status_code == 200, r.text
        [w] = r.json()["predictions"][0]["warnings"]
        assert w["partial"] == [NAMES[7]]
        assert c.get("/v1/model").json()["input"]["nan_is_missing"] is True
        inf = body.replace("NaN", "Infinity")
        assert c.post("/v1/classify", content=inf).status_code == 422  # Inf is never missing


def test_nan_is_refused_by_default(client):
    x = _skeleton()
    x[4, 7, 1] = np.nan
    r = client.post("/v1/classify", content=json.dumps({"sequences": [x.tolist()]}))
    assert r.status_code == 422 and "NaN or Inf" in r.json()["error"]


def test_short_sequences_are_warned_or_refused(synthetic_store, client, tmp_path):
    [[w]] = _v1_warnings(client, _skeleton(frames=9))
    assert (w["code"], w["frames"], w["min_frames"]) == ("few_frames", 9, 10)
    assert _v1_warnings(client, _skeleton(frames=10)) == [[]]
    # Frames dropped count: 12 sent, 4 without any joint, 8 described.
    dropped, short = _v2_warnings(client, _every_third_frame_gone()[:12])[0]
    assert dropped["code"] == "dropped_frames" and short["frames"] == 8
    with ready_client(
        synthetic_store, tmp_path, onnx_tiers=False, min_frames=5, refuse_short=True
    ) as c:
        assert _v1_warnings(c, _skeleton(frames=5)) == [[]]
        r = _classify(c, _skeleton(frames=5), _skeleton(frames=4))
        assert r.status_code == 422 and r.json()["error"] == (
            "sequence 1: 4 frame(s); this server refuses fewer than 5"
        )
        r = _classify(c, _every_third_frame_gone()[:6])
        assert r.status_code == 422 and "4 frame(s) (2 of 6 dropped)" in r.json()["error"]
        assert c.get("/v1/model").json()["input"]["min_frames"] == 5


def test_model_states_the_input_contract(client, synthetic_store):
    _, manifest = load_model(synthetic_store)
    m = client.get("/v1/model").json()
    layout = m["layout"]
    assert layout["joint_names"] == list(NAMES) and layout["persons"] == 2
    assert [tuple(b) for b in layout["bones"]] == list(SBU_LAYOUT.bones)
    assert layout["frame"] == manifest.layout.frame.model_dump()
    rules = m["input"]
    assert "(0, 0, 0)" in rules["missing"] and "any" in rules["units"]
    assert "translation" in rules["position"]
    assert rules["min_frames"] == 10 and rules["nan_is_missing"] is False
    assert rules["short_sequences"] == "answered with a warning"
    params = client.get("/v2/models/synthetic-mrmp").json()["parameters"]
    assert all(isinstance(v, str) for v in params.values())  # V2 parameters: strings here
    assert params["joint_names"].split(",") == list(NAMES) and params["persons"] == "2"
    assert [tuple(b) for b in json.loads(params["bones"])] == list(SBU_LAYOUT.bones)
    assert json.loads(params["frame"]) == layout["frame"]
    assert json.loads(params["input"]) == rules


def test_openapi_documents_the_warnings_and_the_input_contract(client):
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    warning = schemas["Prediction"]["properties"]["warnings"]
    assert warning["items"]["$ref"].endswith("/InputWarning")
    codes = schemas["InputWarning"]["properties"]["code"]["enum"]
    assert set(codes) == {
        "dropped_frames",
        "missing_persons",
        "missing_joints",
        "few_frames",
        "unusual_proportions",
        "depth_not_trained",
    }
    body = doc["paths"]["/v1/classify"]["post"]["requestBody"]["content"]["application/json"]
    words = body["schema"]["properties"]["sequences"]["description"]
    assert "(0, 0, 0)" in words and "layout.frame" in words and "any unit" in words
    v2 = doc["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]
    assert "(0, 0, 0)" in v2["application/json"]["schema"]["properties"]["inputs"]["description"]
    answer = schemas["V2InferAnswer"]["properties"]["parameters"]["description"]
    assert "warnings" in answer


# -- proportions ---------------------------------------------------------------------------------


def test_bone_shares_are_free_of_unit_and_position_and_exact_on_a_built_skeleton():
    bones = person_bones(SBU_LAYOUT.bones, 30, 2)
    assert len(bones) == 28 and all(a // 15 == b // 15 for a, b in bones)
    x = _skeleton(frames=5)
    shares = bone_shares(x, bones, 30, 2)
    np.testing.assert_allclose(bone_shares(x * 0.001 + 40.0, bones, 30, 2), shares, rtol=1e-9)
    np.testing.assert_allclose(shares[:14].sum(), 1.0, rtol=0.2)  # medians: about 1 per person
    # One bone of length 3, the others of length 1 (a chain along x): shares 3/16 and 1/16.
    chain = np.zeros((1, 2, 3))
    chain[0, 1] = (3.0, 0.0, 0.0)
    y = np.concatenate([chain, chain + 1.0], axis=1)
    assert bone_shares(y, [(0, 1), (2, 3)], 4, 2).tolist() == [1.0, 1.0]
    line = np.arange(4.0)[None, :, None] * np.array([1.0, 0.0, 0.0])
    line[0, 3, 0] = 5.0  # lengths 1, 1, 3
    assert bone_shares(line, [(0, 1), (1, 2), (2, 3)], 4, 1).tolist() == [0.2, 0.2, 0.6]


def _store_with_stats(store: Path, folder: Path, bone_share: dict, planar: bool = False) -> Path:
    folder.mkdir()
    for f in store.glob("*.*"):
        (folder / f.name).write_bytes(f.read_bytes())
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["input_stats"] = {"bone_share": bone_share, "planar": planar}
    Manifest.model_validate(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_proportions_outside_what_training_saw_are_warned(synthetic_store, tmp_path):
    head = bone_name(NAMES, (0, 1))
    arm = bone_name(NAMES, (18, 19))
    store = _store_with_stats(
        synthetic_store, tmp_path / "stats", {head: (0.0, 0.001), arm: (0.0, 1.0)}
    )
    with ready_client(store, tmp_path, onnx_tiers=False) as c:
        clean = _skeleton()
        [[w]] = _v1_warnings(c, clean)
        share = bone_shares(clean, [(0, 1)], 30, 2)[0]
        assert w["code"] == "unusual_proportions"
        assert w["bones"] == [{"bone": head, "share": round(share, 4), "range": [0.0, 0.001]}]
        assert head in w["message"]
        # A person with a joint never observed is not checked: its filled bones have length 0.
        gone = clean.copy()
        gone[:, NAMES.index("A_LEFT_HAND")] = 0.0
        [[w]] = _v1_warnings(c, gone)
        assert w["code"] == "missing_joints"


def test_depth_sent_to_a_model_trained_flat_is_warned(synthetic_store, tmp_path):
    """A model trained on a 2D tool's keypoints (z = 0, input_stats.planar) warns of any z."""
    store = _store_with_stats(synthetic_store, tmp_path / "flat", {}, planar=True)
    with ready_client(store, tmp_path, onnx_tiers=False, missing_nan=True) as c:
        flat = _skeleton()
        flat[..., 2] = 0.0
        deep = flat.copy()
        deep[3:5, :4, 2] = 7.0
        assert _v1_warnings(c, flat) == [[]]
        gap = flat.copy()
        gap[2, 5] = np.nan  # a joint not detected has no depth
        r = c.post("/v1/classify", content=json.dumps({"sequences": [gap.tolist()]}))
        assert [w["code"] for w in r.json()["predictions"][0]["warnings"]] == ["missing_joints"]
        [[w]] = _v1_warnings(c, deep)
        assert w["code"] == "depth_not_trained" and w["points"] == 8
        assert "8 of 360 joint(s)" in w["message"]
        assert [[w]] == _v2_warnings(c, deep)
        assert "z = 0" in c.get("/v1/model").json()["input"]["depth"]


def test_input_stats_must_name_the_layouts_bones(synthetic_store, tmp_path):
    with pytest.raises(ValueError, match="bones that the layout lacks"):
        _store_with_stats(synthetic_store, tmp_path / "a", {"A_HEAD-B_HEAD": (0.0, 0.5)})
    with pytest.raises(ValueError, match="0 <= low <= high <= 1"):
        _store_with_stats(synthetic_store, tmp_path / "b", {"A_HEAD-A_NECK": (0.5, 0.2)})
