"""A worker picks up an edited profiles file without a restart (serve: test_api)."""

from __future__ import annotations

import os
import time

from tests.fakes.smtp_server import ServerFactory
from tests.pipeline import Pipeline
from tests.tasks.test_pipeline import send


def edit(pipeline: Pipeline, old: str, new: str) -> None:
    path = pipeline.runtime.profiles_file.path
    path.write_text(path.read_text().replace(old, new))
    stat = path.stat()  # a new modification time even within the file system's resolution
    os.utime(path, (stat.st_atime, stat.st_mtime + 1))
    time.sleep(0.3)  # past profiles_check_seconds (0.2 in the pipeline)


def test_a_worker_sends_through_the_server_the_edited_file_names(
    pipeline: Pipeline, make_server: ServerFactory
) -> None:
    pipeline.start_worker(pool="threads", concurrency=1)
    first = send(pipeline, 1)
    pipeline.wait_final(first)
    moved = make_server()

    edit(pipeline, f"port = {pipeline.server.port}", f"port = {moved.port}")
    second = send(pipeline, 2)
    pipeline.wait_final(second)

    assert [m.message["Message-ID"] for m in pipeline.server.messages] == [
        f"<{first}@example.test>"
    ]
    assert [m.message["Message-ID"] for m in moved.messages] == [f"<{second}@example.test>"]
    assert "profiles file" in pipeline.worker_logs() and "reloaded" in pipeline.worker_logs()
