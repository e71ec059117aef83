"""deploy/: every manifest parses, references only configuration keys that exist, and sets
values that Settings accepts; the pieces refer to each other consistently."""

from __future__ import annotations

import configparser
import fnmatch
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from dispatcher.settings import describe, load_settings
from smpp.simulator import build_parser as simulator_parser

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
KEY = re.compile(r"\bSMARTD_[A-Z0-9_]+\b")
KNOWN = {row[0] for row in describe()} | {"SMARTD_CONFIG"}  # SMARTD_CONFIG names a TOML file


def _yaml(relative: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / relative).read_text()) if doc]


def _k8s() -> dict[str, dict[str, Any]]:
    """The Kubernetes objects by kind (one of each here)."""
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in _yaml(f"k8s/{path.name}"):
            objects[doc["kind"]] = doc
    return objects


def _env_file(path: Path) -> dict[str, str]:
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}:{number}: not KEY=VALUE"
        values[key.strip()] = value.strip()
    return values


@pytest.mark.parametrize(
    "path", sorted(p for p in DEPLOY.rglob("*") if p.is_file()), ids=lambda p: p.name
)
def test_every_referenced_key_exists_in_settings(path: Path) -> None:
    """Each SMARTD_* name in a deploy file is a setting (a typo would be silently ignored)."""
    unknown = set(KEY.findall(path.read_text())) - KNOWN
    assert not unknown, f"{path.relative_to(DEPLOY)} references unknown settings {unknown}"


def test_yaml_manifests_parse() -> None:
    """The compose file and every Kubernetes manifest are valid YAML documents."""
    assert _yaml("docker-compose.yml")
    kinds = set(_k8s())
    assert {"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget"} <= kinds


def test_example_env_file_is_a_valid_configuration() -> None:
    """Every value in smartd.env.example is accepted by Settings."""
    values = _env_file(DEPLOY / "smartd.env.example")
    assert set(values) <= KNOWN and "SMARTD_DATABASE_URL" in values
    load_settings(values)


def test_kubernetes_configuration_is_valid_settings() -> None:
    """ConfigMap data plus Secret values make a configuration Settings accepts."""
    objects = _k8s()
    environment = {**objects["ConfigMap"]["data"], **objects["Secret"]["stringData"]}
    settings = load_settings(environment)
    assert settings.http_host == "0.0.0.0"


def test_deployment_probes_replicas_and_security() -> None:
    """2 replicas, liveness /healthz, readiness /readyz, non-root, config and secret wired."""
    objects = _k8s()
    deployment = objects["Deployment"]
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["replicas"] == 2
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["args"] == ["serve"]
    sources = {next(iter(s)): s[next(iter(s))]["name"] for s in container["envFrom"]}
    assert sources == {
        "configMapRef": objects["ConfigMap"]["metadata"]["name"],
        "secretRef": objects["Secret"]["metadata"]["name"],
    }
    labels = spec["template"]["metadata"]["labels"]
    for selector in (
        objects["Service"]["spec"]["selector"],
        objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        spec["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items()
    assert objects["PodDisruptionBudget"]["spec"]["minAvailable"] < spec["replicas"]


def test_compose_runs_postgres_serve_and_the_simulator() -> None:
    """smartd serve reaches the postgres service and the simulator, whose flags parse."""
    (compose,) = _yaml("docker-compose.yml")
    services = compose["services"]
    assert set(services) == {"postgres", "smartd", "smsc-sim"}
    smartd = services["smartd"]
    assert smartd["command"] == ["serve"]
    environment = {k: str(v) for k, v in smartd["environment"].items()}
    settings = load_settings(environment)
    assert "@postgres:" in (settings.database_url or "")
    assert settings.smpp_host == "smsc-sim"
    sim_command = services["smsc-sim"]["command"]
    assert sim_command[0] == "smsc-sim"
    sim = simulator_parser().parse_args(sim_command[1:])
    assert (sim.host, sim.port) == ("0.0.0.0", settings.smpp_port)


def test_dockerfile_is_multi_stage_non_root_with_healthcheck() -> None:
    """Builder and runtime stages on python:3.11-slim, a non-root user, /healthz check."""
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+) AS (\w+)", text, re.MULTILINE)
    assert stages == [("python:3.11-slim", "builder"), ("python:3.11-slim", "runtime")]
    user = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user and not user[-1].startswith(("0", "root"))
    assert re.search(r"^HEALTHCHECK .*", text, re.MULTILINE)
    assert "/healthz" in text
    assert '\nENTRYPOINT ["smartd"]' in text and '\nCMD ["serve"]' in text


def test_systemd_unit_runs_serve_with_the_env_file() -> None:
    """The unit parses, runs `smartd serve` as a non-root user with an EnvironmentFile."""
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "systemd" / "smartd.service")
    service = unit["Service"]
    assert shlex.split(service["ExecStart"])[-1] == "serve"
    assert service["User"] not in ("", "root")
    assert service["EnvironmentFile"].endswith("smartd.env")
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_image_install_carries_every_data_file() -> None:
    """The image installs the package (not editable): package-data must name every data file."""
    root = DEPLOY.parent
    config = tomllib.loads((root / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]
    missing = []
    for package in ("dispatcher", "campaigns", "smpp"):
        for path in (root / package).rglob("*"):
            if not path.is_file() or path.suffix in {".py", ".pyc"} or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(root / package).as_posix()
            if not any(fnmatch.fnmatch(relative, g) for g in globs.get(package, [])):
                missing.append(f"{package}/{relative}")
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
