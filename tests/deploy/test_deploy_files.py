"""The deployment files: Kubernetes schemas, the compose file, systemd units.

Each process they start must be a real `diptych` command, so a renamed
command or option fails here rather than in a cluster.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from pipelines.cli import app

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES_VERSION = "1.30.0"
WORKER_QUEUES = {"support", "sentiment", "recommender", "training"}


def _manifests() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    documents = []
    for name in kustomization["resources"]:
        text = (DEPLOY / "k8s" / name).read_text()
        documents.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return documents


def _command_runs(args: list[str]) -> None:
    """Check that `diptych ARGS --help` parses, so the command and its options exist."""
    command = [arg for arg in args if not arg.startswith("$")]
    first_option = next((i for i, arg in enumerate(command) if arg.startswith("-")), len(command))
    subcommand = command[:first_option]
    result = CliRunner().invoke(app, [*subcommand, "--help"])
    assert result.exit_code == 0, f"diptych {' '.join(subcommand)}: {result.output}"
    options = [arg for arg in command if arg.startswith("--")]
    for option in options:
        assert option in result.output, f"diptych {' '.join(subcommand)} has no {option}"


def test_every_manifest_matches_the_kubernetes_schema() -> None:
    documents = _manifests()

    assert len(documents) >= 15
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_one_worker_deployment_and_autoscaler_per_queue() -> None:
    documents = _manifests()
    workers = {
        d["metadata"]["name"]
        for d in documents
        if d["kind"] == "Deployment" and d["metadata"]["name"].startswith("worker-")
    }
    scaled = {
        d["spec"]["scaleTargetRef"]["name"]
        for d in documents
        if d["kind"] == "HorizontalPodAutoscaler"
    }

    assert workers == {f"worker-{queue}" for queue in WORKER_QUEUES}
    assert "sentiment-consumer" in {d["metadata"]["name"] for d in documents}
    assert scaled == workers


def test_beat_runs_once() -> None:
    [beat] = [d for d in _manifests() if d["metadata"]["name"] == "beat"]

    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"


def test_manifest_commands_exist() -> None:
    for document in _manifests():
        spec = document.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []):
            if container["image"] == "diptych":
                _command_runs(container["args"])


def test_compose_commands_exist() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]

    assert {f"worker-{queue}" for queue in WORKER_QUEUES} <= set(services)
    assert {"redis", "postgres", "console", "beat", "mail", "migrate"} <= set(services)
    for service in services.values():
        if service.get("image") == "diptych:latest":
            _command_runs(service["command"])


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose is not installed"
)
def test_compose_file_passes_config() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr


def test_systemd_units_run_real_commands() -> None:
    units = sorted((DEPLOY / "systemd").glob("*.service"))

    assert {unit.name for unit in units} >= {
        "diptych-console.service",
        "diptych-worker@.service",
        "diptych-beat.service",
    }
    for unit in units:
        lines = unit.read_text().splitlines()
        [start] = [line for line in lines if line.startswith("ExecStart=")]
        args = start.removeprefix("ExecStart=").split()
        assert args[0].endswith("/diptych")
        _command_runs([arg.replace("%i", "support").replace("%H-", "") for arg in args[1:]])
