"""Helpers for service tests: a ready TestClient, valid bodies."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings


@contextmanager
def ready_client(store: Path, tmp: Path, **settings) -> Iterator[TestClient]:
    app = create_app(Settings(model_path=store, tier_dir=tmp / "tiers", **settings))
    with TestClient(app, raise_server_exceptions=False) as client:
        deadline = time.monotonic() + 60
        while client.get("/v2/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "service never turned ready"
            time.sleep(0.05)
        yield client


def sequence(frames: int = 12, joints: int = 30, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((frames, joints, 3)).astype(np.float32).tolist()


def wait_ready(url: str, proc, timeout: float = 90) -> None:
    """Poll a server process's readiness until it answers 200 (or the process dies)."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else "process died"
        try:
            if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "server never turned ready"
        time.sleep(0.1)
