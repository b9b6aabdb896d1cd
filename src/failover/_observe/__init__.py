"""Observability: OpenTelemetry spans, events and metrics (API only), and secret scrubbing."""
