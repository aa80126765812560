"""FastAPI floor: a validated order in, a constant answer out, nothing else.

    python -m uvicorn loadtest.floors.fastapi_floor:app --host 127.0.0.1 --port 8000 \
        --workers 2 --loop uvloop --http httptools --no-access-log

What FastAPI + uvicorn (uvloop, httptools) cost per request before any model work: a lower
bound for the tutorial app, which adds the model call and a log line on top.
"""

from __future__ import annotations

from fastapi import FastAPI

from loadtest.floors.order import ANSWER, FloorAnswer, Order

app = FastAPI(title="FastAPI floor")


# async def: the handler does not block, and FastAPI's docs recommend async def then (a plain
# def would add a threadpool hop the floor does not need).
@app.post("/v1/predict", response_model=FloorAnswer)
async def predict(order: Order) -> FloorAnswer:
    """Validate the order (FastAPI does it from the annotation) and return the constant."""
    return ANSWER


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    """Ready once the app is imported."""
    return {"status": "ready"}
