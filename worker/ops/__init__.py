"""Observability: scrubbed logs, Prometheus metrics, Sentry, and the task events that feed them (the scrubber itself
sits below, in worker/scrub.py, because the Keap client uses it too)."""
