"""deploy/docker-compose.yml as `docker compose` reads it, .env from the example (no tests here)."""

from __future__ import annotations

import functools
import re
from typing import Any

import yaml

from tests.deploy.files import COMPOSE, DEPLOY

ENV_EXAMPLE = DEPLOY / ".env.example"


@functools.cache
def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().removeprefix("'").removesuffix("'")
    return values


INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(text: str, variables: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}."""

    def value(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        given = variables.get(name)
        if operator and operator.endswith("-"):
            unset = given is None or (operator == ":-" and given == "")
            return argument if unset else str(given)
        if given is None or (operator == ":?" and given == ""):
            raise AssertionError(f"compose would stop: {name}: {argument}")
        return given

    return INTERPOLATION.sub(value, text)


@functools.cache
def compose_raw() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@functools.cache
def compose() -> dict[str, Any]:
    """The compose file as `docker compose` sees it with deploy/.env copied from the example."""
    variables = env_example()

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return interpolate(node, variables)
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, dict):
            return {key: walk(item) for key, item in node.items()}
        return node

    resolved: dict[str, Any] = walk(compose_raw())
    return resolved


def service(name: str) -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"][name]
    return found


def compose_command(name: str) -> list[str]:
    command = service(name)["command"]
    assert isinstance(command, list), f"{name}: the exec form, a list: no shell in between"
    return [str(word) for word in command]
