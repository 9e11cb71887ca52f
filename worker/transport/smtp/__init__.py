"""SMTP: sessions (TLS, SASL), pipelined transactions and the connection pool."""

from worker.transport.smtp.pool import SmtpPool
from worker.transport.smtp.session import SmtpSession

__all__ = ["SmtpPool", "SmtpSession"]
