import json

import pytest
import torch

from lab.experiment import evaluation_table, manifest_for, train_config
from mrmp.derive import derive
from mrmp.manifest import RateEvaluation
from mrmp.store import MANIFEST, WEIGHTS, StoreError, load_model, save_model


@pytest.fixture
def store(tmp_path, small_model, synthetic):
    cfg = train_config(synthetic, method="mrmp", epochs=1)
    table = evaluation_table(small_model, synthetic.x[:20], synthetic.y[:20], (0.0, 0.5), "t")
    manifest = manifest_for(synthetic, small_model, cfg, name="m", command="test", evaluation=table)
    save_model(tmp_path / "m", small_model, manifest)
    return tmp_path / "m"


def test_round_trip_gives_identical_networks(store, small_model, synthetic):
    loaded, manifest = load_model(store)
    assert manifest.name == "m" and len(manifest.version) == 64
    assert manifest.evaluated("prior")["0.50"].accuracy >= 0
    x = synthetic.x[:10]
    for r in (0.0, 0.9):
        torch.testing.assert_close(derive(loaded, r)[0](x), derive(small_model, r)[0](x))


def test_weights_file_is_not_a_pickle(store):
    head = (store / WEIGHTS).read_bytes()[:16]
    assert not head.startswith(b"\x80")  # pickle protocol marker


def test_corrupt_weights_are_refused_naming_the_file(store):
    path = store / WEIGHTS
    blob = bytearray(path.read_bytes())
    blob[-10] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(StoreError, match=r"latent\.safetensors.*sha256"):
        load_model(store)


def test_truncated_weights_are_refused(store):
    path = store / WEIGHTS
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(StoreError, match=r"latent\.safetensors"):
        load_model(store)


def test_truncated_weights_with_matching_hash_are_refused(store):
    import hashlib

    path = store / WEIGHTS
    cut = path.read_bytes()[:1000]
    path.write_bytes(cut)
    m = json.loads((store / MANIFEST).read_text())
    m["version"] = hashlib.sha256(cut).hexdigest()
    (store / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(StoreError, match=r"latent\.safetensors: not a readable safetensors"):
        load_model(store)


def test_mismatched_architecture_is_refused(store):
    m = json.loads((store / MANIFEST).read_text())
    m["architecture"]["hidden"] = 32
    (store / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(StoreError, match=r"latent\.safetensors: tensor .* has shape"):
        load_model(store)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"name": "x"}', "missing keys"),
    ],
)
def test_bad_manifest_is_refused_naming_the_file(store, content, message):
    (store / MANIFEST).write_text(content)
    with pytest.raises(StoreError, match=rf"manifest\.json: .*{message}"):
        load_model(store)


def test_missing_files(tmp_path, store):
    with pytest.raises(StoreError, match="no manifest"):
        load_model(tmp_path / "nowhere")
    (store / WEIGHTS).unlink()
    with pytest.raises(StoreError, match=r"latent\.safetensors: missing"):
        load_model(store)


def test_unknown_prior_is_refused(store):
    m = json.loads((store / MANIFEST).read_text())
    m["prior"] = "cauchy"
    (store / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(StoreError, match=r"manifest\.json: prior: unknown prior 'cauchy'"):
        load_model(store)


def test_the_manifest_states_the_input_contract(store):
    _, manifest = load_model(store)
    layout = manifest.layout
    assert layout.bones and all(0 <= j < layout.num_joints for bone in layout.bones for j in bone)
    assert (layout.frame.up, layout.frame.handedness) == ("+y", "right")
    assert "(0, 0, 0)" in manifest.input.missing
    assert "translation" in manifest.input.position and "unit" in manifest.input.units


def test_a_manifest_of_format_1_is_refused_naming_the_versions(store):
    m = json.loads((store / MANIFEST).read_text())
    m["format_version"] = 1
    for key in ("bones", "frame"):
        del m["layout"][key]
    del m["input"]
    (store / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(StoreError, match=r"manifest\.json: format_version 1 is not 2"):
        load_model(store)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["layout"].pop("frame"), r"missing keys layout\.frame"),
        (lambda m: m.pop("input"), r"missing keys input"),
        (lambda m: m["layout"]["frame"].update(up="up"), r"layout\.frame\.up: Input should be"),
        (lambda m: m["layout"]["frame"].update(handedness="both"), r"layout\.frame\.handedness"),
        (lambda m: m["layout"]["bones"].append([3, 30]), r"bones \[\(3, 30\)\] are not pairs"),
        (lambda m: m["layout"]["bones"].append([4, 4]), r"bones \[\(4, 4\)\] are not pairs"),
    ],
)
def test_a_bad_input_contract_is_refused(store, change, message):
    m = json.loads((store / MANIFEST).read_text())
    change(m)
    (store / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(StoreError, match=rf"manifest\.json: .*{message}"):
        load_model(store)


def test_an_accuracy_spread_is_kept_and_an_absent_one_is_not_written():
    assert RateEvaluation(accuracy=90.0, observed_rate=0.5).model_dump() == {
        "accuracy": 90.0,
        "observed_rate": 0.5,
    }
    row = RateEvaluation.model_validate(
        {"accuracy": 90.0, "observed_rate": 0.5, "accuracy_std": 1.2}
    )
    assert row.model_dump(mode="json")["accuracy_std"] == 1.2
