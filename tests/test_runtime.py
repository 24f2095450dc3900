"""Execution backends: the sparse runner equals the dense one, and holds only kept weights."""

import numpy as np
import pytest
import torch

from mrmp.derive import MagnitudeIndex
from mrmp.gcn import GCNConfig, LatentGCN, gcn_forward, gcn_head, gcn_trunk
from mrmp.priors import get_prior
from mrmp.runtime import (
    CALIBRATION_DENSITIES,
    GCNTrunk,
    OnnxRunner,
    SparseRunner,
    TorchRunner,
    calibrate,
    csr32,
    export_onnx,
    sparse_layers,
)


@pytest.mark.parametrize("rate", [0.0, 0.5, 0.9, 0.98, 0.99])
def test_sparse_runner_equals_dense_runner(small_model, rate):
    net, _ = MagnitudeIndex(small_model).derive(rate, "prior")
    x = np.random.default_rng(0).standard_normal((5, 30, 12)).astype(np.float32)
    everything = set(small_model.prunable) | {"classifier"}
    np.testing.assert_allclose(
        SparseRunner(net, everything)(x), TorchRunner(net)(x), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("density", [0.0, 0.02, 0.3, 1.0])
def test_int32_csr_equals_torch_csr(density):
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(37, 53, generator=gen) * (torch.rand(37, 53, generator=gen) < density)
    ours, ref = csr32(w), w.to_sparse_csr()
    assert ours.crow_indices().dtype == ours.col_indices().dtype == torch.int32
    assert torch.equal(ours.crow_indices().long(), ref.crow_indices())
    assert torch.equal(ours.col_indices().long(), ref.col_indices())
    assert torch.equal(ours.values(), ref.values()) and torch.equal(ours.to_dense(), w)


def test_sparse_memory_follows_the_kept_weights(small_model):
    index = MagnitudeIndex(small_model)
    for rate in (0.5, 0.9, 0.98):
        net, info = index.derive(rate)
        runner = SparseRunner(net, set(small_model.prunable))
        kept = info.prunable - info.pruned
        rows = sum(net.params()[n].shape[0] + 1 for n in small_model.prunable)
        unpruned = info.kept_params - kept
        adjacency = net.adjacency.numel() * 4
        # float32 values and int32 column indices per kept weight, int32 row pointers.
        assert runner.nbytes() == 8 * kept + 4 * rows + 4 * unpruned + adjacency


def test_a_sparse_tier_at_090_takes_under_a_quarter_of_the_dense_copy():
    model = LatentGCN(
        GCNConfig(num_joints=30, in_features=12, num_classes=8),
        torch.zeros(30, 30),
        get_prior("gaussian"),
    )
    index = MagnitudeIndex(model)
    dense = TorchRunner(index.derive(0.0)[0]).nbytes()
    net, _ = index.derive(0.9)
    assert SparseRunner(net, set(model.prunable)).nbytes() < 0.25 * dense


def test_calibration_and_layer_choice(small_model):
    layers = sorted(small_model.prunable)
    crossover = calibrate(small_model.config, layers, repeats=3)
    assert set(crossover) == set(layers)
    assert all(c == 0.0 or c in CALIBRATION_DENSITIES for c in crossover.values())
    rates = {"fc": 0.98, "blocks.1.root": 0.5}
    assert sparse_layers(rates, {"fc": 0.05, "blocks.1.root": 0.1}, memory_density=0) == {"fc"}
    # At or below the memory density a matrix is held sparse whatever the speed.
    assert sparse_layers({"fc": 0.9, "blocks.1.root": 0.8}, {}, memory_density=0.125) == {"fc"}
    assert sparse_layers({"fc": 0.9}, {"fc": 0.0}, memory_density=0.0) == set()


def test_the_forward_is_the_head_after_the_trunk_bit_for_bit(small_model):
    net, _ = MagnitudeIndex(small_model).derive(0.9)
    p, a, c = net.params(), net.adjacency, net.config
    x = torch.randn(3, 30, 12, generator=torch.Generator().manual_seed(0))
    features = gcn_trunk(p, a, x, c)
    assert features.shape == (3, 30 * c.width)
    assert torch.equal(gcn_head(p, features, c), gcn_forward(p, a, x, c))


def test_the_trunk_export_gives_the_features_fc_takes(small_model, tmp_path):
    net, _ = MagnitudeIndex(small_model).derive(0.9)
    x = np.random.default_rng(0).standard_normal((5, 30, 12)).astype(np.float32)
    runner = OnnxRunner(export_onnx(GCNTrunk(net), tmp_path / "trunk.onnx"), output="features")
    p, c = net.params(), net.config
    expected = gcn_trunk(p, net.adjacency, torch.from_numpy(x), c).numpy()
    assert runner(x).shape == (5, 30 * c.width)
    np.testing.assert_allclose(runner(x), expected, atol=1e-5, rtol=0)
