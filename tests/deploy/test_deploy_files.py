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


# Where the deployment files mount the public data sets read-only.
DATA_DIR = "/srv/diptych/data"


def _unit_lines(name: str) -> list[str]:
    return (DEPLOY / "systemd" / name).read_text().splitlines()


def _diptych_pod_specs() -> dict[str, dict[str, Any]]:
    """Return the pod spec of every Deployment and Job that runs the diptych image, by name."""
    specs = {}
    for document in _manifests():
        spec = document.get("spec", {}).get("template", {}).get("spec", {})
        images = {container["image"] for container in spec.get("containers", [])}
        if "diptych" in images:
            specs[document["metadata"]["name"]] = spec
    return specs


def test_systemd_migrates_only_in_migrate_unit() -> None:
    """Migrations run once per release from one machine, never at every console start."""
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    migrating = [
        unit.name
        for unit in units
        if any(
            line.startswith("ExecStart") and "db upgrade" in line
            for line in unit.read_text().splitlines()
        )
    ]

    assert migrating == ["diptych-migrate.service"]
    lines = _unit_lines("diptych-migrate.service")
    assert "Type=oneshot" in lines
    # Enabled on every machine, a migration unit would migrate at each boot, concurrently.
    assert "[Install]" not in lines
    for unit in units:
        if unit.name != "diptych-migrate.service":
            [after] = [line for line in unit.read_text().splitlines() if line.startswith("After=")]
            assert "diptych-migrate.service" in after.split(), unit.name


def test_systemd_worker_unescapes_instance_queues() -> None:
    """`diptych-worker@training\\x2cdefault` must reach the worker as `training,default`."""
    [start] = [
        line for line in _unit_lines("diptych-worker@.service") if line.startswith("ExecStart=")
    ]
    args = start.split()

    assert args[args.index("--queues") + 1] == "%I"


def test_compose_migrates_only_in_migrate_service() -> None:
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    diptych = {name: s for name, s in services.items() if s.get("image") == "diptych:latest"}
    migrating = [name for name, s in diptych.items() if s["command"][:2] == ["db", "upgrade"]]

    assert migrating == ["migrate"]
    for name, service in diptych.items():
        if name != "migrate":
            condition = service["depends_on"]["migrate"]["condition"]
            assert condition == "service_completed_successfully", name


def test_compose_mounts_data_sets_read_only() -> None:
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]

    for name, service in services.items():
        if service.get("image") != "diptych:latest" or name == "migrate":
            continue
        assert service["environment"]["DIPTYCH_DATA_DIR"] == DATA_DIR, name
        # The host side is `${DATA_SETS_DIR:-...}`, which contains a colon itself.
        mounts = [volume.rsplit(":", 2)[1:] for volume in service["volumes"]]
        assert [DATA_DIR, "ro"] in mounts, name


def test_k8s_migrates_only_in_job() -> None:
    specs = _diptych_pod_specs()
    migrating = [
        name
        for name, spec in specs.items()
        for container in [*spec.get("initContainers", []), *spec["containers"]]
        if container.get("args", [])[:2] == ["db", "upgrade"]
    ]

    assert migrating == ["diptych-migrate"]


def test_k8s_pods_wait_for_the_schema() -> None:
    """Every diptych pod but the migrate Job first waits for the schema with `db check`."""
    specs = _diptych_pod_specs()

    for name, spec in specs.items():
        checks = [
            container
            for container in spec.get("initContainers", [])
            if container.get("args", [])[:3] == ["db", "check", "--wait"]
        ]
        if name == "diptych-migrate":
            assert checks == [], name
            continue
        [check] = checks
        assert check["image"] == "diptych", name
        assert float(check["args"][3]) > 0, name
        assert {"secretRef": {"name": "diptych-secrets"}} in check["envFrom"], name


def test_k8s_mounts_data_sets_read_only() -> None:
    """The console, every worker and the sentiment consumers read DIPTYCH_DATA_DIR."""
    [config] = [d for d in _manifests() if d["kind"] == "ConfigMap"]
    specs = _diptych_pod_specs()
    readers = {"console", "sentiment-consumer", *(f"worker-{queue}" for queue in WORKER_QUEUES)}

    assert config["data"]["DIPTYCH_DATA_DIR"] == DATA_DIR
    assert readers <= set(specs)
    for name in readers:
        spec = specs[name]
        [container] = spec["containers"]
        [mount] = [m for m in container["volumeMounts"] if m["name"] == "data"]
        [volume] = [v for v in spec["volumes"] if v["name"] == "data"]
        assert mount["mountPath"] == DATA_DIR, name
        assert mount["readOnly"] is True, name
        assert volume["hostPath"]["path"] == DATA_DIR, name
        assert {"configMapRef": {"name": "diptych-config"}} in container["envFrom"], name


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ([], '"torch==2.13.0"'),
        (
            ["TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu"],
            '--index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"',
        ),
    ],
)
def test_makefile_torch_index_url(variables: list[str], expected: str) -> None:
    """TORCH_INDEX_URL reaches only the torch install, and is left out when empty."""
    root = DEPLOY.parent
    result = subprocess.run(
        ["make", "--dry-run", "--always-make", "-C", str(root), "install", *variables],
        capture_output=True,
        text=True,
        check=False,
    )
    installs = [line for line in result.stdout.splitlines() if "pip install" in line]
    [torch] = [line for line in installs if "torch==" in line]

    assert result.returncode == 0, result.stderr
    assert torch.split("--quiet", 1)[1].strip() == expected
    assert sum("--index-url" in line for line in installs) == (1 if variables else 0)
