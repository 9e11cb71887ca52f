"""mailpipe's SMTP relay, as `mailpipe relay` runs it, for the benchmark's relay variant.

    MAILPIPE_...=... python -m bench.run.relay_server PORT

Runs the `mailpipe` command's own entry point with ``relay --host 127.0.0.1
--port PORT``, so the measured server is exactly that command (its logging
set-up and error handling included), with the settings from the MAILPIPE_*
environment as in production, and without depending on where the console
script was installed.
"""

from __future__ import annotations

import sys

from worker.faces.cli import main

if __name__ == "__main__":
    main(["relay", "--host", "127.0.0.1", "--port", sys.argv[1]], prog_name="mailpipe")
