"""deploy/kserve/inferenceservice.yaml: every field one of KServe's InferenceService, of the
type KServe's API declares; its pod the one deploy/k8s/deployment.yaml runs; its port, probes
and model name the ones the service serves. No cluster needed.

The API is taken from KServe's Python client (`kserve`, in the dev extra): the InferenceService
as generated models, `kserve.models.V1beta1InferenceService` and its nested `V1beta1*` models,
with the pod's parts (containers, ports, env, probes, resources, security contexts) as the
`kubernetes.client` `V1*` models they name. Each model lists its fields (`attribute_map`:
attribute -> JSON key) and their types (`openapi_types`). Deserializing into them drops
unknown keys (and KServe's ApiClient cannot reach the kubernetes models), so `_model_errors`
walks the manifest against these tables instead.

What the models check, and so this test:
- every key is a JSON key of its model (a misspelled or a Python-style snake_case key is an
  error, as under `kubectl apply`'s strict field validation);
- every value has its declared type: str, int (a bool is not one), bool, lists and string-keyed
  maps of these, nested models; KServe's `ResourceQuantity` is a str ("500m", "1Gi");
- required fields are present: those whose setter raises on None under client-side validation
  (KServe's models: `spec.predictor`) or that the kubernetes client marks required (a port's
  `containerPort`, a container's and an env var's `name`, an HTTP probe's `port`).
What they do not check: values. Enums (`scaleMetric`, `protocol`), patterns (quantities,
names), ranges (port numbers, `scaleTarget`) are plain str and int in the models, and
int-or-string fields (a probe's `port`) are typed `object`, which takes any value. The models
are the client's release, not the cluster's CRD. KServe's name rule and its custom-predictor
rules are checked below from KServe's source (v0.20.0).
"""

from __future__ import annotations

import difflib
import functools
import operator
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kserve.models
import kubernetes.client
import numpy as np
import pydantic
import pytest
import yaml
from starlette.routing import Match

from mrmp.store import read_manifest
from service import routes_v2
from service.lifecycle import DRAINING
from service.settings import DEFAULT_MODEL, Settings
from service.v2_codec import INPUT
from tests.service_helpers import ready_client, sequence

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "deploy" / "kserve" / "inferenceservice.yaml"
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "docker" / "Dockerfile"

# KServe v0.20.0, pkg/apis/serving/v1beta1/inference_service_validation.go (IsvcNameFmt): the
# admission webhook refuses other names; the models leave metadata.name a plain str.
ISVC_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
# pkg/constants/constants.go: the custom predictor's container, and its protocol variable.
MODEL_CONTAINER = "kserve-container"
PROTOCOL_ENV = "PROTOCOL"


# ---- KServe's InferenceService models ----

# The type names in `openapi_types`: KServe's models (openapi-generator python-legacy) write
# list[T] and dict(str, T), the kubernetes client's (pydantic) List[T] and Dict[str, T].
LIST = re.compile(r"[lL]ist\[(.+)\]")
MAP = re.compile(r"dict\(str, (.+)\)|Dict\[str, (.+)\]")
NATIVE: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "ResourceQuantity": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
}


@functools.cache
def _required(model: type) -> frozenset[str]:
    """The JSON keys `model` cannot go without. The kubernetes client's pydantic models mark
    them required; KServe's raise ValueError in the field's setter when client-side validation
    is on and the value is None (set here on an instance made without __init__, which would
    raise on the first such field)."""
    if issubclass(model, pydantic.BaseModel):
        return frozenset(
            field.serialization_alias or name
            for name, field in model.model_fields.items()
            if field.is_required()
        )
    probe = model.__new__(model)
    probe.local_vars_configuration = SimpleNamespace(client_side_validation=True)
    required = set()
    for attr, key in model.attribute_map.items():
        try:
            setattr(probe, attr, None)
        except ValueError:
            required.add(key)
    return frozenset(required)


def _model_errors(value: Any, type_name: str, path: str = "") -> list[tuple[str, str]]:
    """(path, message) of each place where `value` is not a `type_name` as KServe's models
    declare it: an unknown key, a wrong type, a missing required field. Paths are the
    manifest's keys, `[i]` for a list item and `[key]` for a map entry."""
    where = path or "(the manifest)"
    if type_name == "object":  # int-or-string and free-form fields: any value
        return []
    if m := LIST.fullmatch(type_name):
        if not isinstance(value, list):
            return [(where, f"expected a list ({type_name}), got {type(value).__name__}")]
        return [e for i, v in enumerate(value) for e in _model_errors(v, m[1], f"{path}[{i}]")]
    if m := MAP.fullmatch(type_name):
        if not isinstance(value, dict):
            return [(where, f"expected a map ({type_name}), got {type(value).__name__}")]
        errors = [(f"{path}[{k}]", "a map key must be a str") for k in value if type(k) is not str]
        for key, v in value.items():
            errors += _model_errors(v, m[1] or m[2], f"{path}[{key}]")
        return errors
    if type_name in NATIVE:
        # bool is an int in Python, never in JSON.
        if isinstance(value, NATIVE[type_name]) and (type_name == "bool") == (type(value) is bool):
            return []
        return [(where, f"expected {type_name}, got {type(value).__name__} {value!r}")]
    model = getattr(kserve.models, type_name, None) or getattr(kubernetes.client, type_name, None)
    if model is None:
        return [(where, f"type {type_name!r} is neither a KServe nor a kubernetes client model")]
    if not isinstance(value, dict):
        return [(where, f"expected a {type_name} object, got {type(value).__name__}")]
    fields = {key: model.openapi_types[attr] for attr, key in model.attribute_map.items()}
    errors = [
        (where, f"{type_name} requires {key!r}") for key in sorted(_required(model) - set(value))
    ]
    for key, v in value.items():
        at = f"{path}.{key}" if path else str(key)
        if key in fields:
            errors += _model_errors(v, fields[key], at)
        else:
            near = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            errors.append((at, f"unknown field of {type_name}{hint}"))
    return errors


def _errors(isvc: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, message) of every error against KServe's models, and of KServe's name rule."""
    found = _model_errors(isvc, "V1beta1InferenceService")
    name = isvc.get("metadata", {}).get("name", "")
    if not ISVC_NAME.fullmatch(name):
        found.append(("metadata.name", f"{name!r} does not match {ISVC_NAME.pattern}"))
    return found


def _manifest() -> dict[str, Any]:
    return yaml.safe_load(MANIFEST.read_text())


def _predictor(isvc: dict[str, Any]) -> dict[str, Any]:
    return isvc["spec"]["predictor"]


def _container(isvc: dict[str, Any]) -> dict[str, Any]:
    (container,) = _predictor(isvc)["containers"]
    return container


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


def test_the_manifest_matches_kserves_models():
    isvc = _manifest()
    assert (isvc["apiVersion"], isvc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert _errors(isvc) == []


def _edit(path: str, value: Any = None, *, rename: str | None = None, drop: bool = False):
    """A change to the manifest at a dotted path (list indices as numbers): set to `value`,
    its key renamed to `rename`, or dropped."""
    *parents, leaf = (int(k) if k.isdigit() else k for k in path.split("."))

    def change(isvc: dict[str, Any]) -> None:
        node = functools.reduce(operator.getitem, parents, isvc)
        if rename:
            node[rename] = node.pop(leaf)
        elif drop:
            del node[leaf]
        else:
            node[leaf] = value

    return change


C = "spec.predictor.containers.0"
P = "spec.predictor.containers[0]"
BAD = {
    "misspelled probe field (a kubernetes model)": (
        _edit(f"{C}.readinessProbe.periodSeconds", rename="periodSecond"),
        f"{P}.readinessProbe.periodSecond",
        "unknown field of V1Probe (did you mean 'periodSeconds'?)",
    ),
    "misspelled predictor field (a KServe model)": (
        _edit("spec.predictor.minReplicas", rename="minReplica"),
        "spec.predictor.minReplica",
        "unknown field of V1beta1PredictorSpec (did you mean 'minReplicas'?)",
    ),
    "the Python attribute name instead of the JSON key": (
        _edit(f"{C}.ports.0.containerPort", rename="container_port"),
        f"{P}.ports[0].container_port",
        "unknown field of V1ContainerPort",
    ),
    "port as a string": (
        _edit(f"{C}.ports.0.containerPort", "8000"),
        f"{P}.ports[0].containerPort",
        "expected int, got str '8000'",
    ),
    "a bool for an int": (
        _edit("spec.predictor.scaleTarget", True),
        "spec.predictor.scaleTarget",
        "expected int, got bool True",
    ),
    "an unquoted number as an env value": (
        _edit(f"{C}.env.1.value", 1),
        f"{P}.env[1].value",
        "expected str, got int 1",
    ),
    "a number as an annotation value": (
        _edit("spec.predictor.annotations", {"prometheus.io/port": 8000}),
        "spec.predictor.annotations[prometheus.io/port]",
        "expected str, got int 8000",
    ),
    "a map where a list goes": (
        _edit(f"{C}.ports", {"http1": 8000}),
        f"{P}.ports",
        "expected a list (List[V1ContainerPort]), got dict",
    ),
    "port without its number (required by the kubernetes model)": (
        _edit(f"{C}.ports.0.containerPort", drop=True),
        f"{P}.ports[0]",
        "V1ContainerPort requires 'containerPort'",
    ),
    "no predictor (required by KServe's model)": (
        _edit("spec.predictor", drop=True),
        "spec",
        "V1beta1InferenceServiceSpec requires 'predictor'",
    ),
    "a name KServe refuses": (
        _edit("metadata.name", "SBU_mrmp"),
        "metadata.name",
        "does not match",
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_kserves_models_refuse_a_broken_manifest(case):
    mutate, where, message = BAD[case]
    isvc = _manifest()
    mutate(isvc)
    errors = _errors(isvc)
    assert any(path == where and message in text for path, text in errors), errors


GOOD = {
    "a probe port by name (int-or-string)": _edit(f"{C}.readinessProbe.httpGet.port", "http1"),
    "a quantity in a KServe model": _edit("spec.predictor.overhead", {"cpu": "250m"}),
    "a pod field the manifest does not use": _edit("spec.predictor.nodeSelector", {"a": "b"}),
    "a nested kubernetes model": _edit(f"{C}.startupProbe", {"tcpSocket": {"port": 8000}}),
}


@pytest.mark.parametrize("case", GOOD)
def test_kserves_models_accept_other_valid_fields(case):
    """The check refuses what the models do not declare, not what the manifest does not use."""
    isvc = _manifest()
    GOOD[case](isvc)
    assert _errors(isvc) == []


# ---- KServe's admission rules for a custom predictor ----


def test_a_custom_v2_predictor_scaled_by_an_hpa():
    """What KServe's webhook and controller read (v0.20.0, predictor_custom.go,
    inference_service_validation.go): the model server container by its name, its protocol
    from PROTOCOL (v1 or v2), Standard mode with a CPU target in [1, 100]."""
    isvc = _manifest()
    predictor, container = _predictor(isvc), _container(isvc)
    assert container["name"] == MODEL_CONTAINER
    assert _env(container)[PROTOCOL_ENV] == "v2"
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    assert predictor["scaleMetric"] == "cpu" and 1 <= predictor["scaleTarget"] <= 100
    assert 1 <= predictor["minReplicas"] <= predictor["maxReplicas"]
    (port,) = container["ports"]
    assert "grpc" not in port["name"] and "h2c" not in port["name"], "KServe would route gRPC"


# ---- the same pod as deploy/k8s/ ----


def test_the_pod_is_the_one_the_kubernetes_deployment_runs():
    """Same env, resources, security, grace period, probe timings, scrape annotations and
    scaling as deploy/k8s/, so tests/test_deployment.py's drain sums hold here too."""
    isvc = _manifest()
    predictor, container = _predictor(isvc), _container(isvc)
    pod = yaml.safe_load((K8S / "deployment.yaml").read_text())["spec"]["template"]
    (k8s,) = pod["spec"]["containers"]
    assert container["image"] == k8s["image"]
    assert {k: v for k, v in _env(container).items() if k != PROTOCOL_ENV} == _env(k8s)
    for field in ("resources", "securityContext"):
        assert container[field] == k8s[field], field
    for probe in ("livenessProbe", "readinessProbe"):
        timings = {k: v for k, v in container[probe].items() if k != "httpGet"}
        assert timings == {k: v for k, v in k8s[probe].items() if k != "httpGet"}, probe
    for field in ("terminationGracePeriodSeconds", "securityContext"):
        assert predictor[field] == pod["spec"][field], field
    assert predictor["annotations"] == pod["metadata"]["annotations"]

    hpa = yaml.safe_load((K8S / "hpa.yaml").read_text())["spec"]
    (metric,) = hpa["metrics"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (
        hpa["minReplicas"],
        hpa["maxReplicas"],
    )
    assert predictor["scaleMetric"] == metric["resource"]["name"]
    assert predictor["scaleTarget"] == metric["resource"]["target"]["averageUtilization"]


# ---- what the service serves ----


def _image_settings(monkeypatch, container: dict[str, Any]) -> Settings:
    """The service's settings in the pod: the image's MRMP_ environment (docker/Dockerfile's
    ENV), then the manifest's, read by Settings as the container reads them."""
    image = dict(re.findall(r"\b(MRMP_[A-Z_]+)=(\S+)", DOCKERFILE.read_text()))
    for name, value in {**image, **_env(container)}.items():
        if name.startswith("MRMP_"):
            assert name.removeprefix("MRMP_").lower() in Settings.model_fields, name
            monkeypatch.setenv(name, value)
    return Settings()


def test_port_and_model_are_the_ones_the_service_serves(monkeypatch):
    isvc = _manifest()
    container = _container(isvc)
    settings = _image_settings(monkeypatch, container)
    (port,) = container["ports"]
    assert port["containerPort"] == settings.port
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == settings.port, probe
    assert _predictor(isvc)["annotations"]["prometheus.io/port"] == str(settings.port)
    assert settings.workers == 1  # one worker per core: the pod's 1 CPU
    assert isvc["metadata"]["name"] == read_manifest(DEFAULT_MODEL).name


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A ready client of the service on the shipped model (ONNX tiers off: routes only)."""
    with ready_client(DEFAULT_MODEL, tmp_path_factory.mktemp("kserve"), onnx_tiers=False) as c:
        yield c


def _v2_route(path: str):
    """The endpoint of the service's V2 router that serves GET `path`, and its path parameters."""
    scope = {"type": "http", "method": "GET", "path": path}
    for route in routes_v2.router.routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            return child["endpoint"], child["path_params"]
    raise AssertionError(f"the service has no V2 GET route for {path}")


def test_probe_paths_are_the_services_v2_routes():
    container = _container(_manifest())
    live = container["livenessProbe"]["httpGet"]["path"]
    ready = container["readinessProbe"]["httpGet"]["path"]
    assert _v2_route(live) == (routes_v2.live, {})
    assert _v2_route(ready) == (
        routes_v2.model_ready,
        {"name": read_manifest(DEFAULT_MODEL).name},
    )


def test_probes_answer_as_kubernetes_needs(shipped):
    """Ready: both 200; draining: readiness 503 (the endpoints drop the pod), liveness 200
    (the kubelet does not restart it)."""
    container = _container(_manifest())
    live = container["livenessProbe"]["httpGet"]["path"]
    ready = container["readinessProbe"]["httpGet"]["path"]
    assert shipped.get(live).status_code == 200
    assert shipped.get(ready).status_code == 200
    DRAINING.set()
    try:
        assert shipped.get(ready).status_code == 503
        assert shipped.get(live).status_code == 200
    finally:
        DRAINING.clear()
    assert shipped.get(ready).status_code == 200


def test_the_inference_url_of_the_isvc_answers(shipped):
    """<status.url>/v2/models/<metadata.name>/infer, the URL KServe gives clients, is served."""
    name = _manifest()["metadata"]["name"]
    seqs = np.array([sequence(frames=12, joints=30)], dtype=np.float32)
    body = {
        "inputs": [
            {
                "name": INPUT,
                "shape": list(seqs.shape),
                "datatype": "FP32",
                "data": seqs.reshape(-1).tolist(),
            }
        ]
    }
    r = shipped.post(f"/v2/models/{name}/infer", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["model_name"] == name


def test_an_image_serving_another_model_never_turns_ready(tmp_path, synthetic_store):
    """The readiness probe names the model: a pod whose image serves another one is never
    put behind the InferenceService."""
    ready = _container(_manifest())["readinessProbe"]["httpGet"]["path"]
    with ready_client(synthetic_store, tmp_path, onnx_tiers=False) as other:
        assert other.get("/v2/health/ready").status_code == 200
        assert other.get(ready).status_code == 404
