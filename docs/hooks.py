"""MkDocs hooks: the HTTP reference, generated from the intake's own OpenAPI document.

Before each build, ``reference/openapi.json`` (the document ``mailpipe serve``
answers at ``/openapi.json``) and ``reference/http.md`` (every path, method,
summary, parameter, body and response schema, and every schema's fields) are
written into the docs folder from ``create_app``, so the reference cannot drift
from the code. Both are generated, never committed (.gitignore). A file is
rewritten only when its content changes, so ``mkdocs serve``, which rebuilds
on every change in the folder, does not loop.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

METHODS = ("get", "put", "post", "delete", "patch")


def intake_app() -> FastAPI:
    """The intake's app as ``mailpipe serve`` builds it, without a store, broker or profiles."""
    from worker.credentials import Profiles
    from worker.credentials.profiles_document import ProfilesDocument
    from worker.faces.http.app import create_app
    from worker.faces.http.keys import ApiKeys
    from worker.settings import Settings

    # The app reads its runtime's settings (the body limit) and the routes of the
    # profiles file's document when it is made, and nothing else until a request
    # comes; the OpenAPI document depends on the endpoints only. An empty file here.
    # model_construct: the defaults, whatever MAILPIPE_* this shell has.
    path = Path("profiles.toml")
    empty = ProfilesDocument(path=path, tables={}, profiles=Profiles(path), version="")
    runtime = SimpleNamespace(
        settings=Settings.model_construct(), profiles_file=SimpleNamespace(document=lambda: empty)
    )
    return create_app(runtime, ApiKeys(()))  # type: ignore[arg-type]


def openapi_document() -> dict[str, Any]:
    """The intake's OpenAPI document, as ``mailpipe serve`` answers it at /openapi.json."""
    return intake_app().openapi()


def _schema_name(schema: dict[str, Any] | None) -> str:
    """A schema as a reader names it: its component, or its type."""
    if not schema:
        return ""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        return " or ".join(_schema_name(option) for option in schema["anyOf"])
    if schema.get("type") == "array":
        return f"array of {_schema_name(schema.get('items')) or 'any'}"
    if "enum" in schema:
        return " \\| ".join(f"`{value}`" for value in schema["enum"])
    return str(schema.get("type", "any"))


def _body_schema(operation: dict[str, Any]) -> str:
    content = operation.get("requestBody", {}).get("content", {})
    return "; ".join(
        f"{_schema_name(media.get('schema'))} (`{kind}`)" for kind, media in content.items()
    )


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _operation(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    lines = [f"## `{method.upper()} {path}`", "", operation.get("description", ""), ""]
    parameters = operation.get("parameters", [])
    if parameters:
        lines += [
            "| parameter | in | required | type | meaning |",
            "| --- | --- | --- | --- | --- |",
        ]
        for parameter in parameters:
            lines.append(
                f"| `{parameter['name']}` | {parameter['in']} | "
                f"{'yes' if parameter.get('required') else 'no'} | "
                f"{_cell(_schema_name(parameter.get('schema')))} | "
                f"{_cell(parameter.get('description', ''))} |"
            )
        lines.append("")
    if body := _body_schema(operation):
        lines += [f"Body: {body}", ""]
    lines += ["| answer | meaning | body |", "| --- | --- | --- |"]
    for status, response in operation.get("responses", {}).items():
        schemas = [media.get("schema") for media in response.get("content", {}).values()]
        named = next((_schema_name(s) for s in schemas if s and "$ref" in s), "")
        lines.append(f"| {status} | {_cell(response.get('description', ''))} | {named} |")
    return [*lines, ""]


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"### {name}", "", schema.get("description", ""), ""]
    properties = schema.get("properties", {})
    if properties:
        required = set(schema.get("required", []))
        lines += ["| field | type | required | meaning |", "| --- | --- | --- | --- |"]
        for field, spec in properties.items():
            lines.append(
                f"| `{field}` | {_cell(_schema_name(spec))} | "
                f"{'yes' if field in required else 'no'} | {_cell(spec.get('description', ''))} |"
            )
        lines.append("")
    return lines


def http_reference(document: dict[str, Any]) -> str:
    """The Markdown page: a table of every operation, then each one, then each schema."""
    operations = [
        (path, method, item[method])
        for path, item in document["paths"].items()
        for method in METHODS
        if method in item
    ]
    lines = [
        "# HTTP reference",
        "",
        f"{document['info'].get('summary', '')} Generated from the OpenAPI document of",
        "`mailpipe serve` ([openapi.json](openapi.json); a running intake answers it at",
        "`/openapi.json` and shows it at `/docs`). How keys, webhooks and routes work:",
        "[HTTP intake and webhooks](../http.md).",
        "",
        "| method | path | summary | body |",
        "| --- | --- | --- | --- |",
    ]
    for path, method, operation in operations:
        lines.append(
            f"| {method.upper()} | `{path}` | {_cell(operation.get('summary', ''))} | "
            f"{_body_schema(operation)} |"
        )
    lines.append("")
    for path, method, operation in operations:
        lines += _operation(path, method, operation)
    lines += ["## Schemas", ""]
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        lines += _schema(name, schema)
    return "\n".join(lines).rstrip("\n") + "\n"


def _write(path: Path, text: str) -> None:
    """Writes ``text`` when it differs, whole: a build reading the file meanwhile sees one."""
    if path.exists() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text)
    partial.replace(path)


def on_pre_build(config: Any) -> None:
    reference = Path(config["docs_dir"]) / "reference"
    document = openapi_document()
    _write(reference / "openapi.json", json.dumps(document, indent=2) + "\n")
    _write(reference / "http.md", http_reference(document))
