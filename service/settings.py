"""Service settings: environment variables with the prefix MRMP_ (or keyword arguments)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mrmp.rates import Mode
from mrmp.runtime import MEMORY_DENSITY

# A bound more than a wait: a batch runs as soon as every request in flight waits in one, so a
# lone request pays nothing and under load the batches form within a loop iteration or two
# (python -m bench: HTTP with batching on and off, docs/benchmarks.md). The timer only runs a
# batch that waits on a request stuck elsewhere.
BATCH_MAX_DELAY_MS = 2.0

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "model_store" / "sbu-mrmp"


class Settings(BaseSettings):
    """Every knob of the service. Dicts and lists are given as JSON in the environment, e.g.
    MRMP_TIERS='{"accurate": 0.5, "balanced": 0.9, "fast": 0.98}'."""

    model_config = SettingsConfigDict(env_prefix="MRMP_", extra="forbid")

    model_path: Path = Field(DEFAULT_MODEL, description="model store folder")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, description="uvicorn worker processes (one per core)")

    tiers: dict[str, float] = Field(
        default_factory=lambda: {"accurate": 0.5, "balanced": 0.9, "fast": 0.98},
        description="fixed tiers: name -> pruning rate; exported to ONNX and warmed at start",
    )
    default_tier: str = "balanced"
    tier_mode: Mode = Field("prior", description="threshold mode of the tiers")
    tier_dir: Path | None = Field(
        None, description="where ONNX tiers are written (default: <model_path>/tiers)"
    )
    onnx_tiers: bool = Field(
        True, description="export the tiers to ONNX and time onnxruntime among their candidates"
    )
    memory_density: float = Field(
        MEMORY_DENSITY,
        ge=0,
        le=1,
        description="matrices at or below this kept density are held sparse (CSR) even where "
        "dense kernels are a little faster, so a cached network's memory follows its kept "
        "weights; 0: by speed alone (no effect without sparse_kernels)",
    )
    tier_backend: Literal["fastest", "onnxruntime", "torch"] = Field(
        "fastest",
        description="what serves a tier: the fastest candidate measured at start-up, or the "
        "named backend (onnxruntime: the faster of the masked and the compacted export)",
    )
    tier_batch: int = Field(
        1,
        ge=1,
        description="the batch size tier candidates are compared at (timed at 1 and 32, "
        "interpolated between)",
    )
    sparse_kernels: bool = Field(
        True,
        description="hold and run sparse matrices as CSR (where calibration shows it is "
        "faster, or at or below memory_density); off: every network runs dense",
    )

    batch_max_delay_ms: float = Field(
        BATCH_MAX_DELAY_MS,
        ge=0,
        description="dynamic batching: the longest a request waits for others for the same "
        "network to join its batch (Triton's max_queue_delay); a batch runs sooner when full or "
        "when every request in flight is waiting in one; 0: batching off",
    )
    batch_max_size: int = Field(
        32,
        ge=1,
        description="dynamic batching: the most sequences in one network call (a request with "
        "as many or more runs alone)",
    )

    degrade_in_flight: int = Field(
        8, ge=0, description="requests in flight above which degradable requests are degraded"
    )
    degrade_tier: str = Field("fast", description="the tier a degraded request is served by")

    cache_max_entries: int = Field(32, ge=1)
    cache_max_bytes: int = Field(512 * 2**20, ge=1)

    max_body_bytes: int = Field(
        8 * 2**20, ge=1, description="body limit, counted after decompression (gzip, deflate)"
    )
    body_timeout_s: float = Field(
        10.0, gt=0, description="seconds for a request's body to arrive whole, else 408"
    )
    max_sequences: int = Field(64, ge=1)
    max_frames: int = Field(4096, ge=1)
    max_top_k: int = Field(10, ge=1)

    missing_nan: bool = Field(
        False, description="a joint with a NaN coordinate is missing, like (0, 0, 0), not a 422"
    )
    min_frames: int = Field(
        10,
        ge=1,
        description="sequences with fewer frames (after dropping frames with no joint) are "
        "answered with a warning; 10 is the shortest SBU training sequence",
    )
    refuse_short: bool = Field(
        False, description="refuse (422) a sequence shorter than min_frames instead of warning"
    )

    torch_threads: int = Field(1, ge=1)
    onnx_threads: int = Field(1, ge=1)
    rate_label_step: float = Field(0.01, gt=0, le=1, description="grid of the `rate` label")
    drain_seconds: float = Field(
        0.0, ge=0, description="after SIGTERM: seconds of not-ready (503) before closing"
    )
    graceful_timeout: float = Field(
        30.0, gt=0, description="after closing: seconds for the requests in flight to finish"
    )
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = "info"
    access_log: bool = Field(False, description="one log line per request (costs throughput)")

    @model_validator(mode="after")
    def _onnx_backend_needs_onnx_tiers(self) -> Settings:
        if self.tier_backend == "onnxruntime" and not self.onnx_tiers:
            raise ValueError("tier_backend onnxruntime needs onnx_tiers on")
        return self

    @model_validator(mode="after")
    def _named_tiers_exist(self) -> Settings:
        for field in ("default_tier", "degrade_tier"):
            name = getattr(self, field)
            if name not in self.tiers:
                raise ValueError(f"{field} {name!r} is not one of the tiers {sorted(self.tiers)}")
        return self

    def tier_folder(self) -> Path:
        return self.tier_dir or self.model_path / "tiers"
