"""Metrics, request logs and usage tracing."""
