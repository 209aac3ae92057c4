"""The deploy files say what the code needs: a Redis that keeps its data, workers with events on, health checks,
time limits below the visibility timeout, a pinned image without the sandbox, KEDA scaling each worker Deployment on
the queue it consumes. Kubernetes manifests are checked against the official schemas (kubernetes-validate) and the
compose file by `docker compose config` where either is installed."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"


def k8s_docs() -> list[dict]:
    return [doc for path in sorted(K8S.glob("*.yaml")) if path.name != "kustomization.yaml"
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def celery_commands() -> list[list[str]]:
    """Every `celery worker` command line of the Procfile, the Dockerfile, compose and the manifests."""
    found = [line.split(":", 1)[1].split() for line in (ROOT / "Procfile").read_text().splitlines()
             if " worker " in line]
    cmd = re.search(r"^CMD (\[.*?\])$", (DEPLOY / "Dockerfile").read_text().replace("\\\n", ""), re.M | re.S)
    found.append(json.loads(cmd.group(1)))
    compose = yaml.safe_load((DEPLOY / "compose.yml").read_text())
    found += [s["command"] for s in compose["services"].values() if "worker" in (s.get("command") or [])]
    found += [c["args"] for doc in k8s_docs() if doc["kind"] == "Deployment"
              for c in doc["spec"]["template"]["spec"]["containers"] if "worker" in (c.get("args") or [])]
    return found


def test_every_worker_sends_task_events_for_flower():
    commands = celery_commands()
    assert len(commands) >= 9 and all("-E" in command for command in commands), commands


def test_compose_keeps_redis_data_checks_health_and_waits_for_what_it_needs():
    compose = yaml.safe_load((DEPLOY / "compose.yml").read_text())
    services = compose["services"]
    redis = services["redis"]
    assert {"--appendonly", "yes", "--appendfsync", "always", "--maxmemory-policy", "noeviction"} <= set(
        redis["command"]) and redis["volumes"] and redis["healthcheck"]
    for name in ("worker", "worker-live", "keeper", "metrics", "flower", "prometheus"):
        assert name in services and services[name]["restart"] == "unless-stopped"
    for name in ("worker", "worker-live", "keeper", "metrics"):
        assert services[name]["healthcheck"]["test"] and services[name]["depends_on"]["redis"]["condition"] == (
            "service_healthy")
    assert services["prometheus"]["depends_on"]["metrics"]["condition"] == "service_healthy"
    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == ["metrics:9808"]


def compose_command() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def test_compose_config_validates(tmp_path):
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor docker-compose is installed")
    (tmp_path / "deploy").mkdir()
    for name in ("compose.yml", "prometheus.yml"):
        shutil.copy(DEPLOY / name, tmp_path / "deploy" / name)
    (tmp_path / ".env").write_text("KEAP_API_KEY=x\n")  # the compose file reads ../.env
    result = subprocess.run([*command, "-f", str(tmp_path / "deploy" / "compose.yml"), "config", "-q"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_image_is_pinned_and_leaves_the_sandbox_out():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "requirements.lock" in dockerfile and "--no-deps" in dockerfile and "sandbox" not in dockerfile.split(
        "COPY")[-1].split("\n")[0]
    assert not re.search(r"^COPY\s+sandbox", dockerfile, re.M) and "[sandbox]" not in dockerfile
    pins = {line.split("==")[0].lower().replace("_", "-") for line in (DEPLOY / "requirements.lock").read_text()
            .splitlines() if line and not line.startswith("#")}
    assert all("==" in line for line in (DEPLOY / "requirements.lock").read_text().splitlines()
               if line and not line.startswith("#"))
    needed = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[\[<>=!~ ]", dep)[0].lower() for dep in needed}
    assert names <= pins, names - pins
    assert not {"pyyaml", "jsonschema", "pytest"} & pins  # the sandbox's and the tests' dependencies stay out


# A fresh interpreter in which the sandbox and its extra (pyyaml, jsonschema) cannot be imported, as in the image.
_WITHOUT_SANDBOX = """
import sys
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("sandbox", "yaml", "jsonschema"):
            raise ImportError(f"no {name} in the image")
sys.meta_path.insert(0, Absent())
from admin.cli import main
main(["schema"])
"""


def test_the_command_runs_without_the_sandbox_extra():
    result = subprocess.run([sys.executable, "-c", _WITHOUT_SANDBOX], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["title"]


def test_kubernetes_time_limits_lanes_and_scaling_fit_together():
    docs = k8s_docs()
    config = next(d["data"] for d in docs if d["kind"] == "ConfigMap")
    soft, hard = float(config["TASK_SOFT_TIME_LIMIT_SECONDS"]), float(config["TASK_TIME_LIMIT_SECONDS"])
    assert 3 * float(config["KEAP_TIMEOUT_SECONDS"]) <= soft < hard < float(config["VISIBILITY_TIMEOUT_SECONDS"])
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert {"keap-orders-worker-live", "keap-orders-worker-backfill", "keap-orders-keeper",
            "keap-orders-metrics"} <= set(deployments)
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        if name.startswith(("keap-orders-worker", "keap-orders-keeper")):
            assert pod["spec"]["terminationGracePeriodSeconds"] > hard  # a step finishes on SIGTERM
            worker, sidecar = pod["spec"]["containers"]
            assert worker["livenessProbe"] and sidecar["args"][-1] == "--no-ledger"
    auths = {d["metadata"]["name"] for d in docs if d["kind"] == "TriggerAuthentication"}
    scaled = [d for d in docs if d["kind"] == "ScaledObject"]
    assert {s["spec"]["scaleTargetRef"]["name"] for s in scaled} == {"keap-orders-worker-live",
                                                                     "keap-orders-worker-backfill"}
    for obj in scaled:
        target = deployments[obj["spec"]["scaleTargetRef"]["name"]]
        queues = target["spec"]["template"]["spec"]["containers"][0]["args"]
        consumed = queues[queues.index("-Q") + 1].split(",")
        for trigger in obj["spec"]["triggers"]:
            assert trigger["type"] == "redis" and trigger["authenticationRef"]["name"] in auths
            assert trigger["metadata"]["listName"] in consumed and {"listLength", "databaseIndex"} <= set(
                trigger["metadata"])
        assert obj["spec"]["minReplicaCount"] <= obj["spec"]["maxReplicaCount"]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert set(kustomization["resources"]) == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml",
                                                                                     "secret.example.yaml"}


def test_kubernetes_manifests_validate_against_the_official_schemas():
    validator = pytest.importorskip("kubernetes_validate")
    checked = 0
    for doc in k8s_docs():
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a custom resource: its fields are checked above
        for version in ("1.29.0", validator.latest_version()):
            validator.validate(doc, version, strict=True)
        checked += 1
    assert checked >= 9


def test_the_grafana_dashboard_shows_metrics_that_exist():
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = " ".join(t["expr"] for panel in dashboard["panels"] for t in panel["targets"])
    used = set(re.findall(r"keap_orders_[a-z_]+", exprs))
    known = {"keap_orders_orders", "keap_orders_queue_messages", "keap_orders_keeper_overdue",
             "keap_orders_steps_total", "keap_orders_step_seconds_bucket", "keap_orders_keap_calls_total",
             "keap_orders_rate_limit_waits_total", "keap_orders_quota_remaining", "keap_orders_order_failures_total"}
    assert used == known
    source = (ROOT / "worker" / "ops" / "metrics.py").read_text()
    for name in used:
        base = re.sub(r"_(total|bucket)$", "", name).removeprefix("keap_orders_")
        assert f"{{PREFIX}}_{base}" in source, name
