"""The deployment files: every Kubernetes manifest valid against the Kubernetes API's own
schemas (kubernetes-validate, offline, strict: no unknown fields), the pieces wired to one
another, and the compose file's structure."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from conftest import ROOT

DEPLOY = ROOT / "deploy"
KUBERNETES_VERSION = "1.37.0"


def _documents(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


MANIFESTS = {
    f"{document['kind']}/{document['metadata']['name']}": document
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
    for document in _documents(path)
}


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_every_manifest_is_valid_kubernetes(name: str) -> None:
    kubernetes_validate.validate(MANIFESTS[name], KUBERNETES_VERSION, strict=True)


def test_the_manifests_are_the_set_a_deployment_needs() -> None:
    assert sorted(MANIFESTS) == [
        "Deployment/digits", "HorizontalPodAutoscaler/digits", "PodDisruptionBudget/digits",
        "Secret/digits-database", "Service/digits",
    ]  # fmt: skip


def test_an_invalid_manifest_is_refused() -> None:
    """The check can fail: a misspelt field and a wrong type are both caught."""
    service = yaml.safe_load((DEPLOY / "kubernetes" / "service.yaml").read_text())
    service["spec"]["selektor"] = service["spec"].pop("selector")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBERNETES_VERSION, strict=True)
    service["spec"]["selector"] = service["spec"].pop("selektor")
    service["spec"]["ports"][0]["port"] = "eighty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBERNETES_VERSION, strict=True)


def test_the_deployment_probes_limits_and_locks_down_its_pods() -> None:
    deployment = MANIFESTS["Deployment/digits"]
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's user (Dockerfile)
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    for part in (*pod["initContainers"], container):
        assert part["securityContext"]["readOnlyRootFilesystem"] is True
        assert part["securityContext"]["allowPrivilegeEscalation"] is False
        assert {"requests", "limits"} <= part["resources"].keys()
        url = next(env for env in part["env"] if env["name"] == "DATABASE_URL")
        assert url["valueFrom"]["secretKeyRef"] == {"name": "digits-database", "key": "url"}
    (migrate,) = pod["initContainers"]
    assert migrate["command"] == ["python", "-m", "db", "upgrade"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert "url" in MANIFESTS["Secret/digits-database"]["stringData"]


def test_service_autoscaler_and_budget_point_at_the_deployment() -> None:
    labels = MANIFESTS["Deployment/digits"]["spec"]["template"]["metadata"]["labels"]
    assert MANIFESTS["Service/digits"]["spec"]["selector"].items() <= labels.items()
    assert MANIFESTS["Service/digits"]["spec"]["ports"][0]["targetPort"] == "http"
    target = MANIFESTS["HorizontalPodAutoscaler/digits"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "digits")
    budget = MANIFESTS["PodDisruptionBudget/digits"]["spec"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()


def test_the_compose_file_is_wired_together() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"db", "migrate", "app1", "app2", "balancer"}
    for name, service in services.items():
        assert "image" in service, name
        for needed, condition in (service.get("depends_on") or {}).items():
            assert needed in services, (name, needed)
            assert condition["condition"] in {
                "service_started", "service_healthy", "service_completed_successfully",
            }  # fmt: skip
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[needed], needed
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith(".") or source in compose["volumes"], (name, volume)
    for name in ("db", "app1", "app2", "balancer"):
        assert services[name]["healthcheck"]["test"], name
    assert services["app1"] == services["app2"]  # identical replicas
    assert services["app1"]["read_only"] is True
    # the password only ever comes from the environment
    text = (DEPLOY / "compose.yaml").read_text()
    secret = "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
    assert re.findall(r"digits:(\$\{[^}]*\})@db", text) == [secret, secret]
    assert services["db"]["environment"]["POSTGRES_PASSWORD"] == secret
    assert services["migrate"]["command"] == ["python", "-m", "db", "upgrade"]
    # the balancer sends to both replicas, on the port the image serves
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert re.findall(r"server (app\d):8000", nginx) == ["app1", "app2"]
    assert services["balancer"]["ports"] == ["8000:8000"]
