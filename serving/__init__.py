"""The service's insides; ``service.py`` only adapts HTTP to them.

- ``settings``: the one settings object; ``startup``: settings, the verified model, and each
  worker's pipeline, or a one-line refusal;
- ``schema``: the /v1 request and response models (validation);
- ``pipeline/``: the request path: feature store -> feature assembly -> adaptive batcher ->
  model -> clamp -> prediction log (bounded queue, retention and size cap);
- ``edge/``: what a connection meets first, in each worker: request-target, header and time
  limits (414/431/408), unknown paths -> ``/unmatched``, the refusals metric;
- ``middleware/``: plain ASGI in front of BentoML: request id + JSON log line, bearer-token
  auth, body guard (JSON only, size limit for every framing, JSON shape), the /metrics scrape
  cache, the corrected OpenAPI document;
- ``telemetry/``: Prometheus metrics and their fixed label sets, bounded JSON logging, the
  drift monitor;
- ``accept``: each worker's share of the listening socket's accept queue;
- ``shutdown``: drain on SIGTERM; close the door only when the whole server stops (one worker
  restarted leaves the queue to its siblings); a worker whose serving process died stops itself.
"""
