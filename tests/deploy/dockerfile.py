"""deploy/Dockerfile read into its instructions and build stages (no tests here)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from tests.deploy.files import DOCKERFILE


@dataclass(frozen=True)
class Instruction:
    name: str  # upper case
    flags: dict[str, str]  # --from=builder, --interval=30s, …
    arguments: str  # the rest, continuation lines joined

    def exec_form(self) -> list[str]:
        words: list[str] = json.loads(self.arguments)
        return words


def dockerfile() -> list[Instruction]:
    """The instructions of deploy/Dockerfile, comments dropped, continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        logical.append(pending)
        pending = ""
    assert not pending, "the Dockerfile ends in a continuation line"
    instructions = []
    for text in logical:
        name, _, rest = text.strip().partition(" ")
        flags = {}
        while rest.lstrip().startswith("--"):
            flag, _, rest = rest.lstrip().partition(" ")
            key, _, value = flag[2:].partition("=")
            flags[key] = value
        instructions.append(Instruction(name.upper(), flags, rest.strip()))
    return instructions


def stages() -> list[list[Instruction]]:
    found: list[list[Instruction]] = []
    for instruction in dockerfile():
        if instruction.name == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def only(instructions: list[Instruction], name: str) -> Instruction:
    matching = [i for i in instructions if i.name == name]
    assert len(matching) == 1, f"{len(matching)} {name} instructions"
    return matching[0]
