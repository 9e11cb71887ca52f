"""Every secret a test uses or sees, so logs, Redis values and errors can be scanned for them."""

from __future__ import annotations

from collections.abc import Iterable


class SecretRegistry:
    """Strings that must never appear in a log line, a Redis value or an exception text."""

    def __init__(self) -> None:
        self.values: set[str] = set()

    def add(self, *values: str | None) -> None:
        for value in values:
            if not value:
                continue
            if "-----BEGIN" in value:
                # A PEM block: its base64 body lines are what would leak.
                self.values.update(
                    line for line in value.splitlines() if len(line) > 40 and "-----" not in line
                )
            elif len(value) >= 8:
                self.values.add(value)

    def found_in(self, texts: Iterable[str]) -> list[str]:
        return sorted({v for text in texts for v in self.values if v in text})

    def assert_absent(self, *texts: str) -> None:
        leaked = self.found_in(texts)
        assert not leaked, f"secrets leaked: {[v[:6] + '…' for v in leaked]}"
