"""A profile's secrets and files: given inline, in an environment variable, or in a file.

``SecretReader`` collects every problem on the way, one line each (whatever
the profiles file holds), so that ``load_profiles`` reports them all at once.
Paths are relative to the profiles file; nothing read is ever echoed.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from pathlib import Path

from pydantic import SecretStr

from providers import CredentialsConfigError
from worker.credentials.profile_table import ProfileSpec


def one_line(text: str) -> str:
    """``text`` with line breaks and other unprintable characters escaped (``\\n``, ``\\x00``)."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
        for c in text
    )


class SecretReader:
    """Reads one profile's secrets and files, noting each problem as one line."""

    def __init__(self, name: str, base_dir: Path, env: Mapping[str, str], *, secrets: bool) -> None:
        self.name = name
        self.base_dir = base_dir
        self.env = env
        self.secrets = secrets
        self.problems: list[str] = []

    def problem(self, field_name: str | None, message: str) -> None:
        where = f"profile '{self.name}'" + (f", field '{field_name}'" if field_name else "")
        self.problems.append(one_line(f"{where}: {message}"))

    def secret(self, spec: ProfileSpec, base: str, *, required: bool = False) -> SecretStr | None:
        """A secret given inline, as ``<base>_env`` or as ``<base>_file``: exactly one way."""
        given = {
            name: getattr(spec, name)
            for name in (base, f"{base}_env", f"{base}_file")
            if getattr(spec, name) is not None
        }
        if len(given) > 1:
            self.problem(base, f"give only one of {', '.join(given)}")
            return None
        if not given:
            if required:
                self.problem(base, f"missing (set {base}, {base}_env or {base}_file)")
            return None
        ((name, value),) = given.items()
        if not self.secrets:
            return None
        if name.endswith("_env"):
            return self.from_env(name, value)
        if name.endswith("_file"):
            text = self.read_file(name, value)
            if text is not None and not text.strip():
                self.problem(name, f"{self.path(value)} is empty")
                return None
            return SecretStr(text.strip()) if text is not None else None
        if not value.strip():
            self.problem(name, "is empty")
            return None
        return SecretStr(value)

    def from_env(self, field_name: str, variable: str) -> SecretStr | None:
        value = self.env.get(variable)
        if value is None:
            self.problem(field_name, f"environment variable {variable} is not set")
            return None
        if not value.strip():
            self.problem(field_name, f"environment variable {variable} is empty")
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # bytes that are not UTF-8, as Python decodes os.environ
            self.problem(field_name, f"environment variable {variable} is not UTF-8 text")
            return None
        return SecretStr(value)

    def read_file(self, field_name: str, name: str) -> str | None:
        path = self.path(name)
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            self.problem(field_name, f"cannot read {path}: {exc.strerror or exc}")
        except UnicodeDecodeError:
            self.problem(field_name, f"{path} is not a text (PEM or JSON) file")
        except ValueError:  # a NUL in the name
            self.problem(field_name, f"{path} is not a usable file name")
        return None

    def check_ca_file(self, path: Path, field_name: str = "ca_file") -> None:
        try:
            ssl.create_default_context(cafile=str(path))
        except FileNotFoundError:
            self.problem(field_name, f"cannot read {path}: No such file or directory")
        except (OSError, ssl.SSLError):
            self.problem(field_name, f"{path} holds no PEM CA certificate")
        except ValueError:  # a NUL in the name
            self.problem(field_name, f"{path} is not a usable file name")

    def token_ca_file(self, spec: ProfileSpec) -> Path | None:
        if spec.token_ca_file is None:
            return None
        path = self.path(spec.token_ca_file)
        self.check_ca_file(path, "token_ca_file")
        return path

    def check_key(self, field_name: str, load: Callable[[], object]) -> None:
        try:
            load()
        except CredentialsConfigError as exc:
            self.problem(field_name, exc.message)

    def path(self, name: str) -> Path:
        """Relative paths are relative to the profiles file, not the working directory."""
        try:
            path = Path(name).expanduser()
        except RuntimeError:  # ~user of a user that does not exist: reading it then fails
            path = Path(name)
        return path if path.is_absolute() else self.base_dir / path
