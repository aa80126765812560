"""The server wing: what stands between a client's connection and the service's routes.

``edge/`` (connection limits, unknown paths), ``middleware/`` (ASGI middleware in front of
BentoML's app), ``accept.py`` (greedy accepting), ``drain.py`` (SIGTERM drain, with
``worker_markers.py`` and ``listener.py``) and ``asgi.py`` (the ASGI types they share);
``wiring.py`` puts them around the service for ``service.py``. Arrows run one way: middleware
-> edge -> asgi, drain -> listener, accept -> listener, wiring -> everything.
"""
