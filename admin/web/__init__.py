"""The HTTP service (`keap-orders serve`): the ingestion API, the stores' webhooks and the operators' console in one
FastAPI app. It validates, registers and enqueues; it never waits on Keap."""
