"""SMTP: sessions (TLS, SASL), pipelined transactions, the connection pool and its slots."""

from worker.transport.smtp.pool import SmtpPool
from worker.transport.smtp.session import SmtpSession, ssl_context
from worker.transport.smtp.slots import ConnectionSlots

__all__ = ["ConnectionSlots", "SmtpPool", "SmtpSession", "ssl_context"]
