"""Conveyor over HTTP: the REST API under /api/v1 (FastAPI), for `conveyor serve`."""
