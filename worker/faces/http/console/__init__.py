"""The operator console (``/ui/`` of ``mailpipe serve``): jobs, one job, profiles, actions."""

from worker.faces.http.console.routes import router

__all__ = ["router"]
