"""BentoML floor: a validated order in, a constant answer out, nothing else.

    BENTOML_FLOOR_WORKERS=2 python -m bentoml serve loadtest.floors.bentoml_floor:BentoMLFloor \
        --host 127.0.0.1 --port 8000

What BentoML's HTTP stack costs per request before any model work (the same framework path the
service's ``/v1/predict`` takes: input_spec validation, the API wrapper, the output model).
``BENTOML_FLOOR_TRACING=off`` excludes every URL from tracing, as the service does by default.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml

from loadtest.floors.order import ANSWER, FloorAnswer, Order


@bentoml.service(
    name="bentoml_floor",
    workers=int(os.environ.get("BENTOML_FLOOR_WORKERS", "1")),
    # A floor logs nothing per request (the FastAPI floor runs with --no-access-log).
    logging={"access": {"enabled": False}},
    **(
        {"tracing": {"excluded_urls": [".*"]}}
        if os.environ.get("BENTOML_FLOOR_TRACING") == "off"
        else {}
    ),
)
class BentoMLFloor:
    """One do-nothing prediction route."""

    # output_spec is a pydantic model: BentoML 1.4.39 rebuilds the JSON schema on every
    # response for other outputs, which would make the floor measure that instead.
    @bentoml.api(route="/v1/predict", input_spec=Order, output_spec=FloorAnswer)
    async def predict(self, **order: Any) -> FloorAnswer:
        """Return the constant; BentoML has validated the body against ``Order``."""
        return ANSWER
