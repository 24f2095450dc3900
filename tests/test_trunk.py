"""The shared blocks session: one export per architecture serves every rate, each runner with
its own weights bound, answering as the masked network does."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mrmp.derive import MagnitudeIndex
from mrmp.runtime import SparseRunner, TorchRunner, build_runner
from mrmp.trunk import SharedTrunkRunner, trunk_inputs, trunk_session


def sequences(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 30, 12)).astype(np.float32)


@pytest.mark.parametrize("rate", [0.0, 0.5, 0.9, 0.98, 0.99])
def test_shared_trunk_runner_equals_dense_runner(small_model, rate):
    net, _ = MagnitudeIndex(small_model).derive(rate, "prior")
    x = sequences(5)
    for sparse in (set(), {"fc"}, {"fc", "classifier", "blocks.1.root"}):
        runner = SharedTrunkRunner(net, sparse)
        assert set(runner.head.csr) == sparse & {"fc", "classifier"}
        np.testing.assert_allclose(runner(x), TorchRunner(net)(x), atol=1e-5, rtol=0)


def test_one_session_serves_every_rate_with_its_own_weights(small_model):
    index = MagnitudeIndex(small_model)
    nets = [index.derive(rate)[0] for rate in (0.3, 0.95)]
    runners = [SharedTrunkRunner(net, {"fc"}) for net in nets]
    assert runners[0].session is runners[1].session is trunk_session(small_model.config)
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


def test_build_runner_puts_the_blocks_on_the_shared_session_when_asked(small_model):
    net, info = MagnitudeIndex(small_model).derive(0.98)
    crossover = {name: 0.0 for name in small_model.prunable}
    runner = build_runner(net, info.layer_rates, crossover, trunk_threads=1)
    assert isinstance(runner, SharedTrunkRunner) and set(runner.head.csr) == {"fc"}
    assert isinstance(build_runner(net, info.layer_rates, crossover), SparseRunner)
    assert isinstance(build_runner(net, info.layer_rates, None, trunk_threads=1), TorchRunner)


def test_memory_is_the_bound_blocks_and_the_sparse_head(small_model):
    net, _ = MagnitudeIndex(small_model).derive(0.9)
    runner = SharedTrunkRunner(net, {"fc", "classifier"})
    params = net.params()
    blocks = sum(params[n].numel() for n in trunk_inputs(net.config)) + net.adjacency.numel()
    fc, classifier = runner.head.csr["fc"], runner.head.csr["classifier"]
    csr = 8 * (fc.values().numel() + classifier.values().numel())
    rows = 4 * (fc.crow_indices().numel() + classifier.crow_indices().numel())
    head_dense = sum(params[n].numel() for n in ("fc.bias", "fc_norm.weight", "fc_norm.bias"))
    head_dense += params["classifier.bias"].numel()
    assert runner.nbytes() == 4 * (blocks + head_dense) + csr + rows
    assert runner.nbytes() < 0.5 * TorchRunner(net).nbytes()
