"""What a worker process runs: settings, profiles, token cache, and (later) SMTP and the store."""
