"""The HTTP intake: notifications and alerting webhooks turned into mail jobs."""
