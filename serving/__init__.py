"""The service's insides; ``service.py`` only adapts HTTP to them.

- ``settings``: the one settings object; ``startup``: settings, the verified model, and each
  worker's pipeline, or a one-line refusal;
- ``schema``: the /v1 request and response models (validation);
- ``pipeline/``: the request path: feature store -> feature assembly -> adaptive batcher ->
  model -> clamp -> prediction log;
- ``middleware/``: plain ASGI in front of BentoML: request id + JSON log line, body guard
  (JSON only, size limit), the corrected OpenAPI document;
- ``telemetry/``: Prometheus metrics, JSON logging, the drift monitor;
- ``shutdown``: drain on SIGTERM, close the listener, finish.
"""
