import json

from typer.testing import CliRunner

from lab.cli import app
from mrmp.store import load_model
from tests.experiments import SYNTHETIC_TOML
from training.alignment import prior_alignment

runner = CliRunner()


def test_train_then_eval_on_synthetic(tmp_path):
    out = tmp_path / "model"
    result = runner.invoke(
        app,
        [
            "train", "--dataset", "synthetic-sbu", "--epochs", "3", "--test-fold", "0",
            "--out", str(out), "--rates", "0,0.5,0.9",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    _, manifest = load_model(out)
    assert manifest.seen_rates == [0.0, 0.5, 0.9]
    assert manifest.training.command.startswith("mrmp train")
    assert "0.99" in manifest.evaluated("prior")
    preds = tmp_path / "preds.json"
    result = runner.invoke(
        app,
        [
            "eval", "--model", str(out), "--dataset", "synthetic-sbu", "--test-fold", "0",
            "--rates", "0.5,0.93", "--predictions", str(preds),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "rate 0.93" in result.output
    saved = json.loads(preds.read_text())
    assert len(saved["predictions"]["0.93"]) == len(saved["ids"]) > 0
    result = runner.invoke(app, ["alignment", "--model", str(out), "--rates", "0.5,0.9"])
    assert result.exit_code == 0, result.output
    net, _ = load_model(out)
    total = prior_alignment(net, (0.5, 0.9))[-1]
    assert f"{total.worst_error:+.2f} points at {total.worst_rate:.2f}" in result.output


def test_bad_arguments_are_refused(tmp_path):
    result = runner.invoke(app, ["alignment", "--model", str(tmp_path / "absent")])
    assert result.exit_code == 2 and "absent" in result.output
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "m"), "--rates", "0.5,1.2"])
    assert result.exit_code != 0
    assert "[0, 1)" in result.output
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "m"), "--prior", "cauchy"])
    assert result.exit_code != 0


def test_reproduce_split_by_prior_is_checked(tmp_path):
    config = tmp_path / "synthetic.toml"
    config.write_text(SYNTHETIC_TOML)
    base = ["reproduce", "--config", str(config), "--work", str(tmp_path / "u")]
    result = runner.invoke(app, [*base, "--mrmp-priors", "cauchy", "--stages", "mrmp"])
    assert result.exit_code == 2 and "priors are" in result.output
    # Without --stages mrmp, choosing the SRMP prior would train the other priors too.
    result = runner.invoke(app, [*base, "--mrmp-priors", "gaussian"])
    assert result.exit_code == 2 and "--stages mrmp" in result.output
    assert not (tmp_path / "u").exists()


def test_a_bad_config_is_refused_naming_the_file_and_key(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(SYNTHETIC_TOML.replace("rates_per_step = 4", "rates_per_stop = 4"))
    for command in (["reproduce"], ["ablate"], ["release", "--out", str(tmp_path / "m")]):
        result = runner.invoke(app, [*command, "--config", str(config)])
        assert result.exit_code == 2
        assert f"{config}: " in result.output
        assert "mrmp.rates_per_stop: Extra inputs are not permitted" in result.output
    assert not (tmp_path / "m").exists()
