"""The ``mailpipe`` command's groups: every error, usage errors too, is one line."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import click

from worker.errors import MailpipeError


class _UsageLine(click.ClickException):
    """A usage error as one line, as every other error; exit status 2, as click's."""

    exit_code = 2

    def __init__(self, error: click.UsageError, command_path: str) -> None:
        super().__init__(error.format_message())
        self.command_path = command_path

    def show(self, file: IO[Any] | None = None) -> None:
        message = self.format_message().rstrip(".")
        help_hint = f"`{self.command_path} --help` shows the usage"
        click.echo(f"mailpipe: error: {message} ({help_hint})", file=file, err=True)


@contextmanager
def _usage_in_one_line(ctx: click.Context | None) -> Iterator[None]:
    try:
        yield
    except click.exceptions.NoArgsIsHelpError:
        raise  # `mailpipe` alone: the help, as asked
    except click.UsageError as exc:
        if exc.ctx is not None:
            path = exc.ctx.command_path
        elif ctx is not None and ctx.invoked_subcommand:
            # The parser raises without a context: the command is the one being invoked.
            path = f"{ctx.command_path} {ctx.invoked_subcommand}"
        else:
            path = ctx.command_path if ctx is not None else "mailpipe"
        raise _UsageLine(exc, path) from None


class MailpipeGroup(click.Group):
    """Prints our errors and usage errors as ``mailpipe: error: …`` lines, not tracebacks."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        with _usage_in_one_line(parent):
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> object:
        try:
            with _usage_in_one_line(ctx):
                return super().invoke(ctx)
        except MailpipeError as exc:
            for line in str(exc).splitlines():
                click.echo(f"mailpipe: error: {line}", err=True)
            sys.exit(1)
