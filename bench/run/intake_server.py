"""mailpipe's HTTP intake, as `mailpipe serve` runs it, for the benchmark's intake variant.

    MAILPIPE_...=... python -m bench.run.intake_server PORT

The settings come from the MAILPIPE_* environment, as in production; only the
port (a free one the benchmark picked) and loopback are fixed here, so the
measured server is exactly ``mailpipe serve --host 127.0.0.1 --port PORT``.
"""

from __future__ import annotations

import sys

from worker.faces.http.server import serve

if __name__ == "__main__":
    serve("127.0.0.1", int(sys.argv[1]))
