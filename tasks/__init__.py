"""Celery tasks and the producer API (the pipeline builds them here)."""
