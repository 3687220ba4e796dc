"""docker/k8s/ (issue 22): every manifest valid against Kubernetes' own schemas, offline
(kubernetes-validate, strict); each process runs what the compose file runs, on the same
image, with probes wired to the project's health checks."""

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = sorted((ROOT / "docker" / "k8s").glob("*.yaml"))
KUBERNETES = "1.30"


def documents():
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_manifest_is_valid_kubernetes(path):
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)  # raises when it is not


def test_a_manifest_that_is_wrong_is_refused():
    broken = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
              "spec": {"replicas": "two", "selector": {}, "template": {}}}  # fmt: skip
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_each_process_runs_what_the_compose_file_runs_with_its_health_check():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())["services"]
    containers = {
        doc["metadata"]["labels"]["app.kubernetes.io/component"]: doc["spec"]["template"]["spec"][
            "containers"
        ][0]
        for doc in documents()
        if doc["kind"] in ("Deployment", "Job")
    }
    assert set(containers) == {"migrate", "web", "worker", "beat", "flower"}
    for name in ("migrate", "web", "beat", "flower"):
        assert containers[name]["command"] == compose[name]["command"], name
    assert containers["worker"]["command"][:4] == compose["worker"]["command"][:4]
    assert containers["web"]["readinessProbe"]["httpGet"]["path"] == "/ready"
    for name in ("worker", "beat"):
        assert (
            containers[name]["livenessProbe"]["exec"]["command"]
            == (compose[name]["healthcheck"]["test"][1:])
        )
    beat = next(d for d in documents() if d["metadata"]["name"] == "agentgraph-beat")
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"
