"""The deployment files stay consistent with the code: docker-compose.yml, Dockerfile, deploy/.

No Docker engine is needed: the files are parsed and checked against clipper's own settings, search
attributes and metric names. When the `docker compose` client is installed, it validates the file too.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from clipper.config import Settings
from clipper.job.stages import STAGES, StagePolicy
from workflows.search_attributes import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"

WORKERS = ("worker-io", "worker-cpu", "worker-llm")
SERVICES = {"postgres", "temporal", "temporal-setup", "temporal-ui", "minio", "prometheus", "grafana", *WORKERS}
CONDITIONS = {"service_healthy", "service_completed_successfully", "service_started"}
PUBLISHED = {7233, 8080, 9090, 3000, 9000, 9001}
METRICS = (
    "clipper_stage_duration_seconds_bucket",
    "clipper_stage_failures_total",
    "clipper_stage_retries_total",
    "clipper_audio_seconds_total",
    "clipper_download_bytes_total",
    "approximate_backlog_count",
    "clipper_follow_checks_total",
    "clipper_follow_items_found_total",
    "clipper_follow_jobs_started_total",
    "clipper_follow_failures_total",
    "clipper_follow_items_seen",
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def env_of(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["A=1", "B"] form
        return {k: v for k, _, v in (item.partition("=") for item in env)}
    return {k: None if v is None else str(v) for k, v in env.items()}


def command_text(service: dict[str, Any]) -> str:
    command = service.get("command") or ""
    return command if isinstance(command, str) else " ".join(command)


def depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    return {name: {} for name in deps} if isinstance(deps, list) else deps


def host_ports(service: dict[str, Any]) -> set[int]:
    ports = set()
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.add(int(entry["published"]))
        else:  # "[ip:]host:container[/proto]"
            parts = str(entry).split("/")[0].split(":")
            ports.add(int(parts[-2] if len(parts) > 1 else parts[-1]))
    return ports


def bind_sources(service: dict[str, Any]) -> list[str]:
    sources = []
    for volume in service.get("volumes") or []:
        source = volume["source"] if isinstance(volume, dict) else str(volume).split(":")[0]
        if source.startswith((".", "/")):
            sources.append(source)
    return sources


# --- services, dependencies, health ---------------------------------------------------------------------


def test_services_exist(services: dict[str, Any]) -> None:
    assert SERVICES <= set(services), f"missing services: {sorted(SERVICES - set(services))}"


def test_depends_on_references_existing_services_with_conditions(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for target, spec in depends_on(service).items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = (spec or {}).get("condition")
            assert condition in CONDITIONS, f"{name} -> {target}: give a condition, got {condition!r}"
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target} to be healthy: it has no healthcheck"
            if condition == "service_completed_successfully":
                assert services[target].get("restart", "no") not in ("always", "unless-stopped"), (
                    f"{target} is waited for to complete, so it must be a one-shot service")


def test_ordering_of_startup(services: dict[str, Any]) -> None:
    assert depends_on(services["temporal"])["postgres"]["condition"] == "service_healthy"
    assert depends_on(services["temporal-setup"])["temporal"]["condition"] == "service_healthy"
    for worker in WORKERS:
        deps = depends_on(services[worker])
        assert deps["temporal"]["condition"] == "service_healthy", worker
        assert deps["temporal-setup"]["condition"] == "service_completed_successfully", worker


@pytest.mark.parametrize("name", ["postgres", "temporal", "minio", "prometheus", "grafana"])
def test_healthchecks(services: dict[str, Any], name: str) -> None:
    check = services[name].get("healthcheck")
    assert check and check.get("test") and not check.get("disable"), f"{name} has no healthcheck"


def test_healthcheck_commands(services: dict[str, Any]) -> None:
    assert "pg_isready" in str(services["postgres"]["healthcheck"]["test"])
    assert "temporal operator cluster health" in str(services["temporal"]["healthcheck"]["test"])
    assert "temporal operator cluster health" in command_text(services["temporal-setup"])


def test_ports_published(services: dict[str, Any]) -> None:
    published = set().union(*(host_ports(s) for s in services.values()))
    assert PUBLISHED <= published, f"not published: {sorted(PUBLISHED - published)}"
    assert 7233 in host_ports(services["temporal"])
    assert 8080 in host_ports(services["temporal-ui"])
    assert {9000, 9001} <= host_ports(services["minio"])


def test_image_tags_pinned(services: dict[str, Any]) -> None:
    for name, service in services.items():
        image = service.get("image")
        if image is None:
            assert "build" in service, f"{name} has neither image nor build"
            continue
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        assert tag and tag != "latest", f"{name}: pin the image tag of {image!r}"


def test_bind_mounted_files_exist(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for source in bind_sources(service):
            assert (ROOT / source).resolve().exists(), f"{name} mounts {source}, which does not exist"


def test_temporal_uses_postgres_and_the_dynamic_config(services: dict[str, Any]) -> None:
    temporal = services["temporal"]
    env = env_of(temporal)
    assert env["DB"].startswith("postgres") and env["POSTGRES_SEEDS"] == "postgres"
    mounts = [str(v) for v in temporal["volumes"]]
    mount = next(m for m in mounts if m.startswith("./deploy/temporal"))
    source, target = mount.split(":")[:2]
    path = env["DYNAMIC_CONFIG_FILE_PATH"]
    assert path.startswith(target.rstrip("/") + "/"), "DYNAMIC_CONFIG_FILE_PATH is outside the mounted folder"
    config_file = ROOT / source / path[len(target.rstrip("/")) + 1:]
    config = yaml.safe_load(config_file.read_text())
    for key, values in config.items():
        assert isinstance(values, list) and all("value" in v for v in values), f"malformed dynamic config {key}"
    for key in ("matching.numTaskqueueReadPartitions", "matching.numTaskqueueWritePartitions"):
        single = {v["constraints"]["taskQueueName"] for v in config[key] if v["value"] == 1}
        assert {"clipper", "clipper-io", "clipper-cpu", "clipper-llm"} <= single, (key, single)


# --- workers -------------------------------------------------------------------------------------------


def accepted_env_names() -> set[str]:
    names = set()
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if alias is not None and hasattr(alias, "choices"):
            names.update(str(choice).upper() for choice in alias.choices)
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"CLIPPER_{field_name.upper()}")
    return names


def check_setting(variable: str) -> str | None:
    """None if clipper reads `variable`, else why not."""
    if "__" not in variable:
        return None if variable in accepted_env_names() else f"{variable} is not a clipper setting"
    top, *rest = variable.removeprefix("CLIPPER_").lower().split("__")
    if top != "policies":
        return f"{variable}: only CLIPPER_POLICIES__<STAGE>__<FIELD> is nested"
    if len(rest) != 2 or rest[0] not in STAGES or rest[1] not in StagePolicy.model_fields:
        return f"{variable}: want CLIPPER_POLICIES__<one of {STAGES}>__<a StagePolicy field>"
    return None


def test_check_setting_rejects_unknown_names() -> None:
    assert check_setting("CLIPPER_STORAGE_DIR") is None
    assert check_setting("TEMPORAL_ADDRESS") is None
    assert check_setting("CLIPPER_POLICIES__TRANSCRIBE__MAX_ATTEMPTS") is None
    assert check_setting("CLIPPER_STORAGE_DIRECTORY")
    assert check_setting("CLIPPER_POLICIES__TRANSCRIBE__MAX_TRIES")
    assert check_setting("CLIPPER_POLICIES__TRANSCODE__MAX_ATTEMPTS")
    assert check_setting("CLIPPER_LLM__MODEL")


def test_compose_env_names_are_clipper_settings(services: dict[str, Any]) -> None:
    problems = []
    for name, service in services.items():
        for variable in env_of(service):
            is_clipper = variable.startswith("CLIPPER_") or name in WORKERS and variable.startswith("TEMPORAL_")
            if is_clipper and (problem := check_setting(variable)):
                problems.append(f"{name}: {problem}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("worker", WORKERS)
def test_worker_service(services: dict[str, Any], worker: str) -> None:
    service = services[worker]
    env = env_of(service)
    assert service.get("build") in (".", {"context": "."}) or service["build"].get("context") == "."
    assert env["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert env["CLIPPER_STORAGE_DIR"] == "/data/storage"
    assert env["CLIPPER_METRICS_PORT"] == "9464"
    # Workers serve metrics on loopback unless told otherwise; Prometheus scrapes them from its own container.
    assert env["CLIPPER_METRICS_HOST"] == "0.0.0.0"
    mounts = [str(v) for v in service["volumes"]]
    assert any(m.split(":")[1] == "/data/storage" and not m.startswith((".", "/")) for m in mounts), (
        "the storage folder must be a named volume shared by the pools")
    assert "worker.py" in command_text(service)
    deploy = service.get("deploy") or {}
    assert "replicas" in deploy and "resources" in deploy
    # --scale and replicas need containers without fixed names or published ports.
    assert "container_name" not in service and not service.get("ports")


def test_workers_share_one_storage_volume(compose: dict[str, Any], services: dict[str, Any]) -> None:
    volumes = {str(v).split(":")[0] for w in WORKERS for v in services[w]["volumes"] if ":/data/storage" in str(v)}
    assert len(volumes) == 1 and volumes <= set(compose.get("volumes") or {})


# --- search attributes -----------------------------------------------------------------------------------


def test_setup_registers_exactly_the_search_attributes(services: dict[str, Any]) -> None:
    script = command_text(services["temporal-setup"])
    registered = dict(re.findall(r"search-attribute create\b[^\n]*?--name (\w+) --type (\w+)", script))
    expected = {key.name: key.indexed_value_type.name.title() for key in SEARCH_ATTRIBUTES}
    assert registered == expected
    for line in script.splitlines():
        if "search-attribute create" in line:
            assert "--address temporal:7233" in line and line.rstrip().endswith("|| true"), line


# --- Prometheus and Grafana ------------------------------------------------------------------------------


def scrape_hosts(job: dict[str, Any]) -> set[str]:
    hosts = set()
    for config in job.get("static_configs") or []:
        hosts.update(t.rsplit(":", 1)[0] for t in config.get("targets") or [])
    for config in job.get("dns_sd_configs") or []:
        hosts.update(config.get("names") or [])
    return hosts


def test_prometheus_scrapes_workers_and_temporal(services: dict[str, Any]) -> None:
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    jobs = config["scrape_configs"]
    worker_jobs = [job for job in jobs if set(WORKERS) & scrape_hosts(job)]
    assert set(WORKERS) <= set().union(*(scrape_hosts(job) for job in worker_jobs)), "every pool is scraped by name"
    for job in worker_jobs:
        ports = {str(c.get("port")) for c in job.get("dns_sd_configs") or []}
        ports |= {t.rsplit(":", 1)[1] for c in job.get("static_configs") or [] for t in c["targets"]}
        assert ports == {"9464"}, job["job_name"]
    temporal_port = env_of(services["temporal"])["PROMETHEUS_ENDPOINT"].rsplit(":", 1)[1]
    targets = {t for job in jobs for c in job.get("static_configs") or [] for t in c.get("targets") or []}
    assert f"temporal:{temporal_port}" in targets


def test_grafana_datasource_and_dashboard(services: dict[str, Any]) -> None:
    datasources = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text())
    source = datasources["datasources"][0]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "clipper.yml").read_text())
    path = providers["providers"][0]["options"]["path"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in map(str, services["grafana"]["volumes"]) if ":" in m}
    assert (ROOT / mounts[path] / "clipper.json").is_file(), "the provider's folder holds the dashboard"

    dashboard = json.loads((GRAFANA_DIR / "dashboards" / "clipper.json").read_text())
    panels = [p for p in dashboard["panels"] if p.get("type") != "row"]
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    text = "\n".join(exprs)
    for metric in METRICS:
        assert metric in text, f"no panel queries {metric}"
    assert "histogram_quantile(0.5," in text and "histogram_quantile(0.95," in text
    for panel in panels:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
    for expr in exprs:  # cheap syntax sanity: balanced brackets
        for opening, closing in ("()", "{}", "[]"):
            assert expr.count(opening) == expr.count(closing), expr


# --- Dockerfile ------------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_dockerfile_installs_the_project_and_runs_the_worker() -> None:
    instructions = dockerfile_instructions()
    base = next(arg for op, arg in instructions if op == "FROM")
    assert base.startswith("python:3.11-slim")
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11"

    runs = " && ".join(arg for op, arg in instructions if op == "RUN")
    installs = [shlex.split(cmd) for cmd in re.split(r"&&|;|\|\|", runs) if "pip install" in cmd]
    assert installs, "the Dockerfile installs nothing"
    assert any(re.fullmatch(r"\.(\[[\w,-]+\])?", arg) for cmd in installs for arg in cmd), (
        "install the project itself (`pip install .`), as `make venv` does")
    assert "apt-get" not in runs and "apk " not in runs, "everything comes from PyPI"
    assert any(op == "COPY" for op, _ in instructions)

    envs = " ".join(arg for op, arg in instructions if op == "ENV")
    assert re.search(r"\bHF_HUB_OFFLINE=1\b", envs)
    user = [arg for op, arg in instructions if op == "USER"]
    assert user and user[-1] not in ("root", "0")
    assert any(op == "HEALTHCHECK" for op, _ in instructions)
    cmd = [arg for op, arg in instructions if op == "CMD"][-1]
    assert json.loads(cmd) == ["python", "worker.py"]


# --- docker compose itself -------------------------------------------------------------------------------


def compose_command() -> list[str] | None:
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for candidate in candidates:
        probe = subprocess.run([*candidate, "version"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return candidate
    return None


def test_docker_compose_config_is_valid() -> None:
    command = compose_command()
    if command is None:
        pytest.skip("no `docker compose` client (compose plugin) or `docker-compose` on this machine")
    result = subprocess.run([*command, "-f", str(COMPOSE_FILE), "config", "-q"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_pools_split_the_queues_between_them(services: dict[str, Any]) -> None:
    """Each pool polls its own queues (worker.py --queues) and together they serve every queue, once."""
    from clipper.job.stages import POOLS
    from clipper_app.workers.pools import parse_pools

    polled = {}
    for name in WORKERS:
        command = services[name]["command"]
        assert "--queues" in command, name
        polled[name] = parse_pools(command[command.index("--queues") + 1])
    assert polled["worker-cpu"] == ("cpu",) and polled["worker-llm"] == ("llm",)
    everything = [pool for pools in polled.values() for pool in pools]
    assert sorted(everything) == sorted(POOLS), polled
