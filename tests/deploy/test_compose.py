"""deploy/docker-compose.yml and .env.example: the Compose schema, then what mailpipe needs."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.deploy.compose_file import (
    INTERPOLATION,
    compose,
    compose_command,
    compose_raw,
    env_example,
    service,
)
from tests.deploy.files import (
    COMPOSE,
    DEPLOY,
    GRACE_SECONDS,
    LONG_RUNNING,
    MAILPIPE_SERVICES,
    PLACEHOLDER,
    SECRET_NAME,
    run,
    tool,
)

COMPOSE_SCHEMA = DEPLOY / "schemas" / "compose-spec.json"
QUEUES = ["mail.critical", "mail"]


def duration_seconds(text: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a compose duration: {text}"
    return sum(float(number) * units[unit] for number, unit in parts)


def test_the_compose_file_follows_the_compose_specification() -> None:
    checker = tool("check-jsonschema", "the PyPI package check-jsonschema, in the test extra")
    result = run(checker, "--schemafile", str(COMPOSE_SCHEMA), str(COMPOSE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_the_compose_schema_catches_a_misspelt_key(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("stop_grace_period:", "stop_grace_periods:"))
    result = run(tool("check-jsonschema", "check-jsonschema"), "--schemafile",
                 str(COMPOSE_SCHEMA), str(broken))  # fmt: skip
    assert result.returncode == 1
    assert "stop_grace_periods" in result.stdout


def test_the_vendored_schema_is_the_compose_specification() -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    assert schema["title"] == "Compose Specification"
    assert {"services", "networks", "volumes"} <= set(schema["properties"])


def test_beat_runs_exactly_once() -> None:
    beat = service("beat")
    assert "scale" not in beat
    assert beat["deploy"]["replicas"] == 1
    # A fixed name: `docker compose up --scale beat=2` fails instead of starting a second one.
    assert beat["container_name"]
    assert compose_command("beat")[3] == "beat"


def test_flower_gets_its_password_from_its_environment_only() -> None:
    flower = service("flower")
    command = " ".join(compose_command("flower"))
    assert "basic-auth" not in command and "$" not in command and "FLOWER" not in command
    raw = compose_raw()["services"]["flower"]["environment"]["FLOWER_BASIC_AUTH"]
    assert raw.startswith("${FLOWER_BASIC_AUTH:?"), "compose stops when it is not set"
    # Only what Flower needs: not every secret of .env.
    assert flower["env_file"] == []
    assert set(flower["environment"]) == {"MAILPIPE_BROKER_URL", "FLOWER_BASIC_AUTH"}
    for host_port in flower["ports"]:
        assert host_port.startswith("127.0.0.1:"), "Flower's /metrics is open: loopback only"


def test_every_long_running_service_has_a_healthcheck_and_waits_for_what_it_needs() -> None:
    services = compose()["services"]
    for name, spec in services.items():
        if spec.get("restart") != "no":
            test = spec.get("healthcheck", {}).get("test")
            assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name}: no healthcheck"
        for dependency, condition in spec.get("depends_on", {}).items():
            wanted = condition["condition"]
            assert wanted in ("service_healthy", "service_completed_successfully"), name
            if wanted == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}"
            else:
                assert services[dependency]["restart"] == "no", f"{dependency}: a one-shot"
    for name in LONG_RUNNING:
        assert services[name]["healthcheck"]["test"] == ["CMD", "mailpipe-healthcheck", name]
        assert services[name]["restart"] == "unless-stopped"
    for name in ("worker", "beat", "api", "relay"):
        needs = services[name]["depends_on"]
        assert needs["db-upgrade"] == {"condition": "service_completed_successfully"}, name
        assert needs["redis"] == {"condition": "service_healthy"}, name
    assert compose_command("db-upgrade") == ["mailpipe", "db", "upgrade"]
    assert services["db-upgrade"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_redis_keeps_every_task_message() -> None:
    command = " ".join(service("redis")["command"])
    for setting in ("--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"):
        assert setting in command
    assert any(v.endswith(":/data") for v in service("redis")["volumes"])
    assert any("/var/lib/postgresql/data" in v for v in service("postgres")["volumes"])
    assert "beat-data:/data" in service("beat")["volumes"]
    assert set(compose()["volumes"]) == {"redis-data", "postgres-data", "beat-data"}
    # The database and the broker are not reachable from outside.
    assert compose()["networks"]["backend"]["internal"] is True
    for name in ("redis", "postgres", "beat", "db-upgrade"):
        assert service(name)["networks"] == ["backend"], name
        assert "ports" not in service(name), name


def test_the_worker_is_given_time_to_finish_its_tasks() -> None:
    worker = service("worker")
    assert worker["stop_signal"] == "SIGTERM"
    assert duration_seconds(worker["stop_grace_period"]) >= GRACE_SECONDS
    command = compose_command("worker")
    assert command[command.index("--queues") + 1].split(",") == QUEUES


def test_mailpipe_containers_read_the_profiles_file_and_write_nothing_else() -> None:
    for name in MAILPIPE_SERVICES:
        spec = service(name)
        assert spec["read_only"] is True and spec["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in spec["security_opt"], name
        if name == "flower":
            continue
        mounts = [v for v in spec["volumes"] if isinstance(v, dict)]
        profiles = [v for v in mounts if v["target"] == "/etc/mailpipe/profiles.toml"]
        assert profiles and profiles[0]["read_only"] is True, name
        assert profiles[0]["bind"]["create_host_path"] is False, name
        assert spec["environment"]["MAILPIPE_PROFILES_FILE"] == "/etc/mailpipe/profiles.toml"
        assert spec["env_file"] == [".env"], name


def test_env_example_names_every_variable_with_placeholders_only() -> None:
    example = env_example()
    used = set(INTERPOLATION.findall(COMPOSE.read_text()))
    missing = {name for name, _, _ in used} - set(example)
    assert not missing, f"deploy/.env.example lacks {sorted(missing)}"
    for name, value in example.items():
        if SECRET_NAME.search(name):
            assert PLACEHOLDER in value, f"{name}: only a placeholder, never a real value"
    keys = json.loads(example["MAILPIPE_API_KEYS"])
    assert keys[0]["sha256"] == "0" * 64
    # The filled-in copy is never committed.
    ignored = run("git", "check-ignore", "-q", "deploy/.env")
    assert ignored.returncode == 0, "deploy/.env is not git-ignored"
