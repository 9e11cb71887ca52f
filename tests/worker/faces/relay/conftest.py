"""``mailpipe relay`` for real: its listeners in this process, in front of a pipeline."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.pipeline import RELAY_PASSWORD, Pipeline
from tests.support import free_port
from worker.faces.relay.server import relay_controllers


@dataclass
class Relay:
    port: int
    ca_file: str
    stop: Callable[[], None]

    def client(
        self, user: str | None = "alertmanager", password: str = RELAY_PASSWORD
    ) -> smtplib.SMTP:
        """An smtplib client after STARTTLS (verifying the test CA) and, with a user, AUTH."""
        smtp = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
        smtp.starttls(context=ssl.create_default_context(cafile=self.ca_file))
        smtp.ehlo()
        if user is not None:
            smtp.login(user, password)
        return smtp


@pytest.fixture
def relay(pipeline: Pipeline) -> Iterator[Relay]:
    port = free_port()
    controllers = relay_controllers(pipeline.runtime, "127.0.0.1", port)
    for controller in controllers:
        controller.start()
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            for controller in controllers:
                controller.say_goodbye()
                controller.stop()

    settings = pipeline.runtime.settings
    assert settings.relay_tls_cert_file is not None
    yield Relay(port, str(settings.relay_tls_cert_file.with_name("ca.pem")), stop)
    stop()
