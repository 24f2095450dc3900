"""deploy/kserve/inferenceservice.yaml: valid against KServe's own InferenceService schema, its
pod the one deploy/k8s/deployment.yaml runs, and its port, probes and model name the ones the
service serves. No cluster needed.

The schema is KServe v0.20.0's CRD reduced to the fields the manifest uses
(deploy/kserve/reduce_crd.py; provenance in deploy/kserve/schema/README.md). It is applied as
`kubectl apply` applies it (strict field validation, kubectl's default): an unknown field is an
error, not dropped. The negative cases below show that a misspelled field, a wrong type, a value
outside an enum or a pattern, a missing required field and a field cut from the reduced copy all
fail.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import numpy as np
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
KSERVE = ROOT / "deploy" / "kserve"
MANIFEST = KSERVE / "inferenceservice.yaml"
SCHEMA = KSERVE / "schema" / "inferenceservice.json"
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "docker" / "Dockerfile"

# KServe v0.20.0, pkg/apis/serving/v1beta1/inference_service_validation.go (IsvcNameFmt): the
# admission webhook refuses other names; the CRD leaves metadata to the API server.
ISVC_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
# pkg/constants/constants.go: the custom predictor's container, and its protocol variable.
MODEL_CONTAINER = "kserve-container"
PROTOCOL_ENV = "PROTOCOL"


def _load_reducer():
    spec = importlib.util.spec_from_file_location("reduce_crd", KSERVE / "reduce_crd.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reduce_crd = _load_reducer()


def _strict(schema: dict[str, Any]) -> dict[str, Any] | bool:
    """`schema` as kubectl's strict field validation applies it: an object with listed
    properties refuses others (unless x-kubernetes-preserve-unknown-fields keeps them), and a
    subschema cut from the reduced copy refuses every value."""
    if schema.get(reduce_crd.CUT):
        return False
    out = dict(schema)
    if "properties" in schema:
        out["properties"] = {k: _strict(v) for k, v in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            out[key] = _strict(schema[key])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in schema:
            out[key] = [_strict(s) for s in schema[key]]
    return out


VENDORED = json.loads(SCHEMA.read_text())
VALIDATOR = jsonschema_rs.Draft7Validator(_strict(VENDORED))


def _errors(isvc: dict[str, Any]) -> list[tuple[str, str]]:
    """(instance path, message) of every schema error, and of KServe's name rule."""
    found = [("/".join(map(str, e.instance_path)), e.message) for e in VALIDATOR.iter_errors(isvc)]
    name = isvc.get("metadata", {}).get("name", "")
    if not ISVC_NAME.fullmatch(name):
        found.append(("metadata/name", f"{name!r} does not match {ISVC_NAME.pattern}"))
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


# ---- KServe's schema ----


def test_the_manifest_is_valid_against_kserves_schema():
    isvc = _manifest()
    assert (isvc["apiVersion"], isvc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert _errors(isvc) == []


def _at(isvc: dict[str, Any], path: str) -> tuple[Any, Any]:
    """The node holding the last key of a dotted path (list indices as numbers), and that key."""
    *parents, leaf = (int(k) if k.isdigit() else k for k in path.split("."))
    node = isvc
    for key in parents:
        node = node[key]
    return node, leaf


def _set(path: str, value: Any):
    def mutate(isvc):
        node, leaf = _at(isvc, path)
        node[leaf] = value

    return mutate


def _rename(path: str, new: str):
    def mutate(isvc):
        node, leaf = _at(isvc, path)
        node[new] = node.pop(leaf)

    return mutate


def _drop(path: str):
    def mutate(isvc):
        node, leaf = _at(isvc, path)
        del node[leaf]

    return mutate


C = "spec.predictor.containers.0"
BAD = {
    "misspelled probe field": (
        _rename(f"{C}.readinessProbe.periodSeconds", "periodSecond"),
        "spec/predictor/containers/0/readinessProbe",
        "'periodSecond' was unexpected",
    ),
    "misspelled predictor field": (
        _rename("spec.predictor.minReplicas", "minReplica"),
        "spec/predictor",
        "'minReplica' was unexpected",
    ),
    "port as a string": (
        _set(f"{C}.ports.0.containerPort", "8000"),
        "spec/predictor/containers/0/ports/0/containerPort",
        'is not of type "integer"',
    ),
    "scale metric outside the enum": (
        _set("spec.predictor.scaleMetric", "gpu"),
        "spec/predictor/scaleMetric",
        "is not one of",
    ),
    "memory not a quantity": (
        _set(f"{C}.resources.limits.memory", "1 GiB"),
        "spec/predictor/containers/0/resources/limits/memory",
        "does not match",
    ),
    "port without its number": (
        _drop(f"{C}.ports.0.containerPort"),
        "spec/predictor/containers/0/ports/0",
        '"containerPort" is a required property',
    ),
    "a field cut from the reduced schema": (
        _set("spec.predictor.affinity", {}),
        "spec/predictor/affinity",
        "False schema",
    ),
    "a name KServe refuses": (
        _set("metadata.name", "SBU_mrmp"),
        "metadata/name",
        "does not match",
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_kserves_schema_refuses_a_broken_manifest(case):
    mutate, where, message = BAD[case]
    isvc = _manifest()
    mutate(isvc)
    errors = _errors(isvc)
    assert any(path == where and message in text for path, text in errors), errors


def test_the_vendored_schema_is_the_reduction_for_this_manifest():
    """Reducing the vendored schema again for the manifest changes nothing: it holds no
    description and no subschema the manifest does not reach (a field dropped from the
    manifest leaves its schema behind until the CRD is reduced again)."""
    again = reduce_crd.reduce_schema(VENDORED, [_manifest()])
    assert again == VENDORED, (
        "deploy/kserve/schema/inferenceservice.json is stale: reduce the CRD again "
        "(deploy/kserve/schema/README.md)"
    )


def test_the_reduction_keeps_what_is_reached_and_cuts_the_rest():
    schema = {
        "type": "object",
        "description": "dropped",
        "required": ["a"],
        "properties": {
            "a": {"type": "array", "items": {"type": "object", "properties": {"b": {}, "c": {}}}},
            "d": {"type": "object", "properties": {"e": {"type": "string"}}},
            "m": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
        },
    }
    got = reduce_crd.reduce_schema(schema, [{"a": [{"b": 1}, {}], "m": {"k": 1}}])
    cut = {reduce_crd.CUT: True}
    assert got == {
        "type": "object",
        "required": ["a"],
        "properties": {
            "a": {"type": "array", "items": {"type": "object", "properties": {"b": {}, "c": cut}}},
            "d": cut,
            "m": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
        },
    }
    with pytest.raises(ValueError, match="'not'"):
        reduce_crd.reduce_schema({"not": {"type": "string"}}, [1])


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
