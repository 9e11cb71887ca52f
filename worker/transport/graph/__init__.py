"""Microsoft Graph ``sendMail``: for tenants that switched SMTP AUTH off."""

from worker.transport.graph.transport import GraphTransport

__all__ = ["GraphTransport"]
