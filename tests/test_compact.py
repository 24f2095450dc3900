"""Compaction: the compacted network equals the masked one, is smaller, and exports to ONNX."""

import numpy as np
import pytest
import torch

from mrmp.compact import CompactGCN, CompactKernel
from mrmp.derive import MagnitudeIndex
from mrmp.runtime import OnnxRunner, TorchRunner, export_onnx


def descriptors(batch: int = 6) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((batch, 30, 12)).astype(np.float32)


@pytest.mark.parametrize("rate", [0.0, 0.5, 0.9, 0.98, 0.99])
def test_compacted_network_equals_the_masked_network(small_model, rate):
    net, _ = MagnitudeIndex(small_model).derive(rate, "prior")
    compact = CompactGCN(net, compact_area=1.0)  # compact every matrix that loses anything
    x = descriptors()
    np.testing.assert_allclose(TorchRunner(compact)(x), TorchRunner(net)(x), atol=1e-5, rtol=0)


def test_compaction_removes_exactly_the_dead_rows_and_columns(small_model):
    net, _ = MagnitudeIndex(small_model).derive(0.98, "prior")
    compact = CompactGCN(net, compact_area=1.0)
    params = net.params()
    assert compact.compacted  # at 0.98 the block matrices lose whole rows and columns
    for name in compact.compacted:
        w = params[name]
        kernel = compact.matrices[name.replace(".", "__")]
        live_rows, live_cols = int((w != 0).any(1).sum()), int((w != 0).any(0).sum())
        assert tuple(kernel.weight.shape) == (live_rows, live_cols)
        assert int((kernel.weight != 0).sum()) == int((w != 0).sum())  # no kept weight lost
    # Below the area bound nothing is compacted.
    assert not CompactGCN(MagnitudeIndex(small_model).derive(0.5)[0]).compacted


def test_an_all_pruned_matrix_is_a_zero_map():
    w = torch.zeros(5, 7)
    kernel = CompactKernel(w)
    h = torch.randn(3, 7)
    assert kernel(h).shape == (3, 5) and not kernel(h).any()
    w[2, 4] = 1.5  # one weight: one row, one column
    kernel = CompactKernel(w)
    assert kernel.weight.shape == (1, 1)
    torch.testing.assert_close(kernel(h), h @ w.T)


def test_compacted_network_exports_to_onnx(small_model, tmp_path):
    net, _ = MagnitudeIndex(small_model).derive(0.98, "prior")
    compact = CompactGCN(net, compact_area=1.0)
    runner = OnnxRunner(export_onnx(compact, tmp_path / "c.onnx"), backend="onnxruntime-compact")
    for batch in (1, 7):
        x = descriptors(batch)
        np.testing.assert_allclose(runner(x), TorchRunner(net)(x), atol=1e-5, rtol=0)
    # The export holds the compacted matrices, not the full ones.
    assert runner.nbytes() < TorchRunner(net).nbytes()
