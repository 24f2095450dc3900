"""Split runners: fc on CSR, the rest on onnxruntime; the shared graphs serve every rate, each
runner with its own weights bound, answering as the masked network does."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mrmp.derive import MagnitudeIndex
from mrmp.runtime import GCNTrunk, SparseRunner, TorchRunner, build_runner, export_onnx
from mrmp.trunk import (
    SharedTrunkRunner,
    SplitRunner,
    graph_inputs,
    shared_session,
    warm_sessions,
)


def sequences(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 30, 12)).astype(np.float32)


@pytest.mark.parametrize("rate", [0.0, 0.5, 0.9, 0.98, 0.99])
def test_split_runners_equal_the_dense_runner(small_model, tmp_path, rate):
    net, _ = MagnitudeIndex(small_model).derive(rate, "prior")
    trunk = export_onnx(GCNTrunk(net), tmp_path / "trunk.onnx")
    x = sequences(5)
    expected = TorchRunner(net)(x)
    for sparse in (set(), {"fc"}, {"fc", "classifier", "blocks.1.root"}):
        for runner in (SharedTrunkRunner(net, sparse), SplitRunner(trunk, net, sparse)):
            assert (runner.head.fc is not None) == ("fc" in sparse)
            np.testing.assert_allclose(runner(x), expected, atol=1e-5, rtol=0)


def test_the_csr_fc_holds_exactly_the_kept_weights(small_model):
    net, _ = MagnitudeIndex(small_model).derive(0.98)
    fc = SharedTrunkRunner(net, {"fc"}).head.fc
    np.testing.assert_array_equal(fc.toarray(), net.params()["fc"].numpy())
    assert fc.nnz == int((net.params()["fc"] != 0).sum())


def test_one_session_serves_every_rate_with_its_own_weights(small_model):
    index = MagnitudeIndex(small_model)
    nets = [index.derive(rate)[0] for rate in (0.3, 0.95)]
    runners = [SharedTrunkRunner(net, {"fc"}) for net in nets]
    blocks = shared_session(small_model.config, "blocks")
    assert runners[0].blocks.session is runners[1].blocks.session is blocks
    x = sequences(4, seed=1)
    outs = [r(x) for r in runners]
    assert np.abs(outs[0] - outs[1]).max() > 1e-3  # the rates differ, so must the answers
    for net, out in zip(nets, outs, strict=True):
        np.testing.assert_allclose(out, TorchRunner(net)(x), atol=1e-5, rtol=0)


def test_concurrent_calls_answer_their_own_input(small_model):
    net, _ = MagnitudeIndex(small_model).derive(0.9)
    runner = SharedTrunkRunner(net, {"fc"})
    inputs = [sequences(1 + i % 3, seed=i) for i in range(24)]
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(runner, inputs))
    for x, out in zip(inputs, outs, strict=True):
        np.testing.assert_allclose(out, TorchRunner(net)(x), atol=1e-5, rtol=0)


def test_build_runner_uses_the_shared_graphs_when_asked(small_model):
    net, info = MagnitudeIndex(small_model).derive(0.98)
    crossover = {name: 0.0 for name in small_model.prunable}
    runner = build_runner(net, info.layer_rates, crossover, trunk_threads=1)
    assert isinstance(runner, SharedTrunkRunner) and runner.head.fc is not None
    assert isinstance(build_runner(net, info.layer_rates, crossover), SparseRunner)
    # Sparse kernels off: every matrix dense, still on the shared graphs when asked.
    dense = build_runner(net, info.layer_rates, None, trunk_threads=1)
    assert isinstance(dense, SharedTrunkRunner) and dense.head.fc is None
    assert isinstance(build_runner(net, info.layer_rates, None), TorchRunner)


def test_memory_is_the_bound_weights_and_the_csr_fc(small_model):
    net, _ = MagnitudeIndex(small_model).derive(0.9)
    runner = SharedTrunkRunner(net, {"fc"})
    c, params = net.config, net.params()
    bound = graph_inputs(c, "blocks") + graph_inputs(c, "head_after_fc")
    floats = sum(params[n].numel() for n in bound) + net.adjacency.numel()
    kept = int((params["fc"] != 0).sum())
    csr = 8 * kept + 4 * (params["fc"].shape[0] + 1)  # float32 values, int32 indices
    assert runner.nbytes() == 4 * floats + csr
    assert runner.nbytes() < 0.5 * TorchRunner(net).nbytes()


def test_warmed_sessions_are_the_ones_runners_use(small_model):
    warm_sessions(small_model.config, intra_op_threads=2)
    net, _ = MagnitudeIndex(small_model).derive(0.98)
    runner = SharedTrunkRunner(net, {"fc"}, intra_op_threads=2)
    assert runner.blocks.session is shared_session(small_model.config, "blocks", 2)
    assert runner.head.graph.session is shared_session(small_model.config, "head_after_fc", 2)
    assert runner.blocks.session is not shared_session(small_model.config, "blocks", 1)
