"""ASGI middleware in front of BentoML's app: ``draining`` (``Connection: close`` while the
worker drains), ``request_context`` (request id, one JSON log line), ``auth`` (optional bearer
tokens), ``body_guard`` (JSON only, size limit, JSON shape), ``scrape_cache`` (/metrics rendered
at most once per period), ``openapi`` (the corrected /docs.json), ``docs_page`` (the page at /)."""
