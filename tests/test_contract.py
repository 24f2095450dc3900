"""The input contract: the descriptor does not see position or unit, so the SBU reader's camera
frame serves the weights trained on the files' coordinates, and a held-out recording gets the
same label in millimetres, in metres and moved by a metre."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from typer.testing import CliRunner

from lab.cli import app
from lab.config import CONFIGS, load_experiment
from mrmp.skeleton import DescriptorConfig, describe
from tests.conftest import needs_data
from tests.service_helpers import ready_client
from training.datasets import data_root, load_dataset
from training.datasets.sbu import SBU_DIR, camera_frame, read_sbu_file

# Every descriptor option, alone and together, on 6 joints (two persons of 3).
OPTIONS = {
    "positions": DescriptorConfig(),
    "velocity": DescriptorConfig(velocity=True),
    "one root": DescriptorConfig(root_joint=1),
    "a root per person": DescriptorConfig(root_joint=(0, 3)),
    "local frame": DescriptorConfig(local_frame=(0, 1, 2)),
    "axis_scale": DescriptorConfig(axis_scale=(-2.0, 0.5, 3.0)),
    "all": DescriptorConfig(
        chunks=3,
        velocity=True,
        root_joint=(0, 3),
        axis_scale=(-2.0, 0.5, 3.0),
        local_frame=(0, 1, 2),
    ),
}
# Subnormals off: the service sets flush-to-zero in the process (torch.set_flush_denormal),
# which hypothesis refuses to generate subnormals under.
_SPREAD = st.floats(-1.0, 1.0, allow_nan=False, allow_subnormal=False, width=64)


@pytest.mark.parametrize("option", sorted(OPTIONS))
@settings(max_examples=40, deadline=None)
@given(
    x=arrays(np.float64, st.tuples(st.integers(1, 9), st.just(6), st.just(3)), elements=_SPREAD),
    shift=arrays(
        np.float64,
        3,
        elements=st.floats(-1e4, 1e4, allow_nan=False, allow_subnormal=False, width=64),
    ),
    unit=st.floats(1e-3, 1e3, allow_subnormal=False),
)
def test_the_descriptor_ignores_position_and_unit(option, x, shift, unit):
    # A skeleton needs extent: a sequence of (nearly) one point has no shape to keep.
    if np.sqrt(((x - x.mean(axis=(0, 1))) ** 2).sum(-1).mean()) < 0.05:
        return
    config = OPTIONS[option]
    np.testing.assert_allclose(
        describe(x * unit + shift, config), describe(x, config), rtol=0, atol=2e-5
    )


def _files_coordinates(path: Path) -> np.ndarray:
    """A recording as the files hold it (normalized), float32 as the reader once returned it."""
    table = np.loadtxt(path, delimiter=",", ndmin=2)
    return table[:, 1:].reshape(len(table), 30, 3).astype(np.float32)


@needs_data
def test_sbu_camera_frame_gives_the_descriptors_of_the_files_with_axis_scale():
    """All 282 recordings: the protocol's descriptor of the reader's camera frame equals the
    former protocol's (the files' coordinates with axis_scale = (-2560, -1920, 1280))."""
    protocol = load_experiment(CONFIGS / "sbu.toml").protocol.descriptor
    assert protocol.axis_scale is None
    former = DescriptorConfig(**{**protocol.to_dict(), "axis_scale": (-2560.0, -1920.0, 1280.0)})
    paths = sorted((data_root() / SBU_DIR).glob("*/*/*/skeleton_pos.txt"))
    assert len(paths) == 282
    worst = 0.0
    for path in paths:
        files = _files_coordinates(path)
        camera = read_sbu_file(path)
        np.testing.assert_allclose(camera, camera_frame(files), rtol=1e-6, atol=1e-3)
        worst = max(
            worst, float(np.abs(describe(camera, protocol) - describe(files, former)).max())
        )
    assert worst < 1e-5, worst  # measured: 4.5e-7


def _served(client, sequences: list[np.ndarray], rate: float) -> list[int]:
    body = {"sequences": [s.tolist() for s in sequences], "rate": rate}
    r = client.post("/v1/classify", json=body)
    assert r.status_code == 200, r.text
    return [p["class_index"] for p in r.json()["predictions"]]


@needs_data
@pytest.mark.slow
def test_sbu_fold0_in_millimetres_metres_or_moved_gets_the_labels_of_mrmp_eval(
    sbu_fold0_store: Path, tmp_path: Path
):
    rate = 0.9
    out = tmp_path / "predictions.json"
    args = ["eval", "--model", str(sbu_fold0_store), "--dataset", "sbu", "--test-fold", "0"]
    result = CliRunner().invoke(app, [*args, "--rates", str(rate), "--predictions", str(out)])
    assert result.exit_code == 0, result.output
    reported = float(re.search(r"accuracy\s+([\d.]+)%", result.output).group(1))
    evaluated = json.loads(out.read_text())["predictions"][f"{rate:.2f}"]

    ds = load_dataset("sbu")
    _, test = ds.split(0)
    millimetres = [ds.sequences[i].astype(np.float64) for i in test]
    labels = ds.labels[test]
    metre = np.array([600.0, 0.0, 800.0])  # 1 m, off every axis but y
    with ready_client(sbu_fold0_store, tmp_path) as client:
        for form, sequences in {
            "millimetres": millimetres,
            "metres": [s / 1000 for s in millimetres],
            "moved by a metre": [s + metre for s in millimetres],
            "metres, moved by a metre": [(s + metre) / 1000 for s in millimetres],
        }.items():
            served = _served(client, sequences, rate)
            assert served == evaluated, form
            accuracy = 100 * float(np.mean(np.asarray(served) == labels))
            assert accuracy == pytest.approx(reported, abs=0.005), form
