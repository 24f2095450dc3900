"""Experiments as files: the committed configs are read into typed settings, a bad file is
refused naming the file and the key, and every committed unit is of its config's settings."""

import json
from pathlib import Path

import pytest

from lab.config import CONFIGS, ConfigError, load_experiment, settings_hash
from lab.experiment import ModelSpec, build_model, protocol
from lab.reproduce import Reproduction, unit_kind
from tests.conftest import needs_data
from tests.experiments import SYNTHETIC_TOML, synthetic_experiment

UNITS = Path(__file__).resolve().parents[1] / "docs" / "results" / "units"


@pytest.mark.parametrize("dataset", ["sbu", "fpha"])
def test_every_committed_unit_is_of_the_committed_config(dataset):
    """Nothing is retrained: each unit's recorded hash is the config's for its kind, and is
    the hash of the settings and protocol the unit records."""
    exp = load_experiment(CONFIGS / f"{dataset}.toml")
    repro = Reproduction(exp, UNITS / dataset)
    units = sorted((UNITS / dataset).glob("*/**/*.json"))
    assert len(units) > 10
    for path in units:
        unit = json.loads(path.read_text())
        name = path.relative_to(UNITS / dataset).with_suffix("").as_posix()
        repro.check_unit(name, unit)
        kind = unit_kind(name)
        assert unit["settings_hash"] == settings_hash(unit["settings"], unit["protocol"])
        assert unit["settings_hash"] == exp.unit_hash(kind)
    chosen = json.loads((UNITS / dataset / "srmp_prior.json").read_text())
    assert chosen["settings_hash"] == exp.unit_hash("mrmp")


@pytest.mark.parametrize("dataset", ["sbu", "fpha"])
def test_the_committed_config_is_the_protocol_of_single_runs(dataset):
    exp = load_experiment(CONFIGS / f"{dataset}.toml")
    assert protocol(dataset) == exp.protocol
    assert exp.dataset == dataset and exp.source == str(CONFIGS / f"{dataset}.toml")


def test_the_hash_is_of_the_unit_kind_settings_only(tmp_path):
    """A setting of another kind of unit, or one that selects which units exist (the
    priors), leaves a kind's hash alone; its own settings and the protocol change it."""
    base = tmp_path / "base.toml"
    base.write_text(SYNTHETIC_TOML)
    exp = load_experiment(base)

    def variant(old: str, new: str):
        path = tmp_path / "variant.toml"
        path.write_text(SYNTHETIC_TOML.replace(old, new))
        return load_experiment(path)

    srmp_longer = variant("[srmp]\nepochs = 1", "[srmp]\nepochs = 2")
    assert srmp_longer.unit_hash("mrmp") == exp.unit_hash("mrmp")
    assert srmp_longer.unit_hash("srmp") != exp.unit_hash("srmp")
    one_prior = variant('priors = ["gaussian", "uniform"]', 'priors = ["gaussian"]')
    assert one_prior.unit_hash("mrmp") == exp.unit_hash("mrmp")
    filters = variant("filters = 8", "filters = 16")
    assert all(filters.unit_hash(k) != exp.unit_hash(k) for k in ("dense", "mrmp", "srmp"))
    # Integers and floats are the same value in the canonical JSON as in a unit's JSON.
    assert variant("kl_weight = 1.0", "kl_weight = 1").unit_hash("srmp") == exp.unit_hash("srmp")


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("epochs = 3", "epochs = 3\nepoch = 2", "mrmp.epoch: Extra inputs are not permitted"),
        ("epochs = 2", "epochs = 0", "dense.epochs: Input should be greater than 0"),
        ('lr_schedule = "constant"', 'lr_schedule = "step"', "dense.lr_schedule: Input should"),
        ('["gaussian", "uniform"]', '["gaussian", "cauchy"]', "mrmp.priors: unknown"),
        ("[srmp]\nepochs = 1\n", "[srmp]\n", "missing keys srmp.epochs"),
        ("test_folds = [0]", "test_folds = []", "protocol.test_folds: Tuple should have at least"),
        (
            "filters = 8",
            "filters = 8\n[protocol.descriptor]\nchunk = 4",
            "protocol.descriptor.chunk",
        ),
        (
            "test_folds = [0]",
            "test_folds = [0]\n[protocol.descriptor]\nchunks = 0",
            "chunks must be",
        ),
        ("[srmp]", "[srmp", "not valid TOML"),
    ],
)
def test_a_bad_file_is_refused_naming_the_file_and_the_key(tmp_path, old, new, problem):
    assert old in SYNTHETIC_TOML
    path = tmp_path / "bad.toml"
    path.write_text(SYNTHETIC_TOML.replace(old, new, 1))
    with pytest.raises(ConfigError) as refused:
        load_experiment(path)
    assert str(refused.value).startswith(f"{path}: ") and problem in str(refused.value)


@pytest.mark.parametrize(
    ("variant", "problem"),
    [
        ('name = "x"\ndescriptor = { chunk = 4 }', "variant 'x': unknown DescriptorConfig keys"),
        ('name = "x"\naugment = { rotate = 4 }', "variant 'x': augment:"),
        ('name = "x"\ndescriptor_without = ["chunks"]', "descriptor_without"),
        ('name = "x"\ntrain = { lr = -1.0 }', "train.lr: Input should be greater than 0"),
        ('name = "x"\n[[ablation.variants]]\nname = "x"', "repeated: ['x']"),
    ],
)
def test_a_bad_ablation_variant_is_refused(tmp_path, variant, problem):
    path = tmp_path / "bad.toml"
    ablation = "\n[ablation]\nepochs = 1\nseeds = [0]\n[[ablation.variants]]\n" + variant
    path.write_text(SYNTHETIC_TOML + ablation)
    with pytest.raises(ConfigError, match=r"bad\.toml: ") as refused:
        load_experiment(path)
    assert problem in str(refused.value)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read it"):
        load_experiment(tmp_path / "nope.toml")


@needs_data
def test_the_shipped_model_was_trained_with_the_committed_config():
    """`mrmp release --config configs/sbu.toml` trains with the shipped model's settings."""
    root = Path(__file__).resolve().parents[1]
    manifest = json.loads((root / "model_store" / "sbu-mrmp" / "manifest.json").read_text())
    trained = manifest["training"]["config"]
    repro = Reproduction(load_experiment(CONFIGS / "sbu.toml"), UNITS / "sbu")
    assert json.loads(json.dumps(repro.mrmp_config(trained["prior"]).to_dict())) == trained


def test_mrmp_recipe_options_reach_training_and_absent_keep_the_settings_hash():
    base = synthetic_experiment()
    options = {
        "lr": 0.003,
        "lr_schedule": "cosine",
        "batch_size": 64,
        "temporal_crops": 4,
        "inplace_distill": True,
        "kl_bins": 96,
        "rate_weight": 300.0,
    }
    on = synthetic_experiment(mrmp=options)
    for off in ({"inplace_distill": False}, {"rate_weight": 0.0}):
        assert synthetic_experiment(mrmp=off).unit_hash("mrmp") == base.unit_hash("mrmp")
    assert on.unit_hash("mrmp") != base.unit_hash("mrmp")
    assert on.unit_settings("mrmp")["mrmp_batch_size"] == 64
    cfg = Reproduction(on, None).mrmp_config("gaussian")
    assert (cfg.lr, cfg.lr_schedule, cfg.batch_size, cfg.temporal_crops) == (
        0.003,
        "cosine",
        64,
        4,
    )
    assert cfg.inplace_distill and cfg.kl_bins == 96 and cfg.rate_weight == 300.0
    assert cfg.to_dict()["rate_weight"] == 300.0
    srmp = Reproduction(synthetic_experiment(srmp={"kl_bins": 96, "rate_weight": 30.0}), None)
    assert srmp.srmp_config("gaussian", 0.5).kl_bins == 96
    assert srmp.srmp_config("gaussian", 0.5).rate_weight == 30.0
    assert srmp.exp.unit_hash("srmp") != base.unit_hash("srmp")
    assert Reproduction(base, None).srmp_config("gaussian", 0.5).kl_bins == 48
    plain = Reproduction(base, None).mrmp_config("gaussian")
    assert (plain.lr, plain.lr_schedule, plain.temporal_crops, plain.inplace_distill) == (
        1e-3,
        "constant",
        1,
        False,
    )
    assert plain.kl_bins == 48 and plain.rate_weight == 0.0
    assert "rate_weight" not in plain.to_dict()  # off: recorded as before the option
    assert plain.batch_size == base.protocol.batch_size


def test_the_architecture_option_prunes_every_matrix_and_changes_every_units_hash():
    base = synthetic_experiment()
    on = synthetic_experiment(protocol={"min_prunable_weights": 0})
    assert "min_prunable_weights" not in base.protocol.record()
    assert all(on.unit_hash(k) != base.unit_hash(k) for k in ("dense", "mrmp", "srmp"))
    data = Reproduction(on, None).data
    shapes = build_model(data, ModelSpec()).config.weight_shapes()
    assert all(prunable for name, (_, prunable, _) in shapes.items() if name != "classifier")
    default = build_model(Reproduction(base, None).data, ModelSpec()).config.weight_shapes()
    assert not default["blocks.0.query"][1]
