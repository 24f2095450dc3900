"""Serving equals evaluation: HTTP predictions on SBU's held-out fold 0 are exactly those of
`mrmp eval` for the same model, data and rates (seen and unseen)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lab.cli import app
from mrmp.store import read_manifest
from tests.conftest import needs_data
from tests.service_helpers import ready_client
from training.datasets import load_dataset

RATES = ("0.50", "0.90", "0.98", "0.93")


@needs_data
@pytest.mark.slow
def test_http_predictions_equal_mrmp_eval(sbu_fold0_store: Path, tmp_path: Path):
    out = tmp_path / "predictions.json"
    args = ["eval", "--model", str(sbu_fold0_store), "--dataset", "sbu", "--test-fold", "0"]
    result = CliRunner().invoke(app, [*args, "--rates", ",".join(RATES), "--predictions", str(out)])
    assert result.exit_code == 0, result.output
    evaluated = json.loads(out.read_text())

    ds = load_dataset("sbu")
    _, test = ds.split(0)
    assert evaluated["ids"] == [ds.ids[i] for i in test]
    sequences = [ds.sequences[i].tolist() for i in test]
    name = read_manifest(sbu_fold0_store).name
    with ready_client(sbu_fold0_store, tmp_path) as client:
        for key in RATES:
            r = client.post("/v1/classify", json={"sequences": sequences, "rate": float(key)})
            assert r.status_code == 200, r.text
            served = [p["class_index"] for p in r.json()["predictions"]]
            assert served == evaluated["predictions"][key], key
        # The V2 route too (one request per sequence: V2 tensors have one length).
        v2 = []
        for seq in sequences:
            arr = np.asarray(seq, dtype=np.float32)
            body = {
                "parameters": {"rate": 0.93},
                "inputs": [
                    {
                        "name": "skeleton",
                        "shape": [1, *arr.shape],
                        "datatype": "FP32",
                        "data": arr.reshape(-1).tolist(),
                    }
                ],
                "outputs": [{"name": "class_index"}],
            }
            answer = client.post(f"/v2/models/{name}/infer", json=body).json()
            v2.append(answer["outputs"][0]["data"][0])
        assert v2 == evaluated["predictions"]["0.93"]
