"""keap-orders worker: Celery tasks that import orders into Keap, one step at a time."""
