"""ASGI middleware in front of BentoML's app: ``request_context`` (request id, one JSON log line),
``body_guard`` (JSON only, size limit), ``openapi`` (the corrected /docs.json)."""
