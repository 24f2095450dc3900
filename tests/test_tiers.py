"""Tier candidates: where the head is sparse, the split runner (blocks on onnxruntime, head on
CSR) is exported, checked against torch, timed, and served when fastest."""

import numpy as np

from mrmp.derive import MagnitudeIndex
from mrmp.rates import RateKey
from mrmp.runtime import SparseRunner, TorchRunner
from service.settings import Settings
from service.tiers import TierPreparer


def preparer(small_model, tmp_path, **overrides) -> TierPreparer:
    settings = Settings(tier_dir=tmp_path / "tiers", **overrides)
    return TierPreparer(settings, "v1", (30, 12), lambda net, info: SparseRunner(net, {"fc"}))


def test_a_sparse_tier_has_a_split_candidate_that_answers_as_torch(small_model, tmp_path):
    index = MagnitudeIndex(small_model)
    net, info = index.derive(0.98)
    tier = preparer(small_model, tmp_path).prepare("fast", RateKey.of(0.98, "prior"), net, info)
    assert {"torch-sparse", "onnxruntime", "onnxruntime-split"} <= set(tier.candidates_ms)
    assert (tmp_path / "tiers" / "fast.split.onnx").is_file()
    stamp = (tmp_path / "tiers" / "fast.split.json").read_text()
    assert '"variant": "split"' in stamp
    x = np.random.default_rng(2).standard_normal((3, 30, 12)).astype(np.float32)
    np.testing.assert_allclose(tier.runner(x), TorchRunner(net)(x), atol=1e-4, rtol=0)
    served = tier.runner.backend
    assert (
        min(tier.candidates_ms, key=lambda b: tier.candidates_ms[b]["compute_batch1_p50"]) == served
    )


def test_a_dense_head_has_no_split_candidate(small_model, tmp_path):
    net, info = MagnitudeIndex(small_model).derive(0.5)
    tier = preparer(small_model, tmp_path).prepare("accurate", RateKey.of(0.5, "prior"), net, info)
    assert "onnxruntime-split" not in tier.candidates_ms
    assert not (tmp_path / "tiers" / "accurate.split.onnx").exists()
