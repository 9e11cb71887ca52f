"""The token cache: each profile's access token, shared by every worker process.

``TokenCache`` is the one entry point; behind it, each module does one job:
sealed_store (encrypted tokens in Redis, key rotation), memory_copy (this
process's copy), invalidation (the pub/sub broadcast and its listener) and
refresh (one fetch for all processes, and when a stale token still serves).
"""

from worker.credentials.tokens.cache import TokenCache
from worker.credentials.tokens.cached_token import CachedToken, TokenSource

__all__ = ["CachedToken", "TokenCache", "TokenSource"]
