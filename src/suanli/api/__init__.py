"""The REST API (FastAPI): the blueprint's contract, bearer-token tenants, /metrics, OpenAPI."""
