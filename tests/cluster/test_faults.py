"""Faults on the local multi-replica stack (issue 27, item 2), each under a steady client load
through HAProxy, each reporting requests sent / failed, labels sent / joined and the recovery
time (printed at the end of the run and appended to the results file, tests/cluster/conftest.py).

* labels through the balancer land on other replicas than their predictions: all join;
* Redis restarted (a clean stop, as a rollout does) and, separately, frozen 10 s (SIGSTOP):
  predictions keep answering from flagged defaults, no replica dies, labels of predictions made
  before the restart join afterwards (deploy/redis/redis.conf's AOF), and the outage shows in
  /health and in Prometheus;
* ``kill -9`` of a replica: HAProxy retries on another replica (``retry-on conn-failure
  empty-response``, ``option redispatch``), the replica restarts and is back in rotation;
* a rolling SIGTERM restart of every replica: zero failed requests (each drains: /readyz 503
  while still serving, HAProxy takes it out, then it stops).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from loadtest.cluster.stack import Stack
from loadtest.cluster.traffic import (
    FaultFigures,
    HealthWatch,
    Sent,
    SteadyLoad,
    send_labels,
    wait_until,
)
from tests.cluster.conftest import order_for

pytestmark = [pytest.mark.cluster, pytest.mark.server, pytest.mark.redis]

FREEZE_S = 10.0
REDIS_DOWN_S = 3.0
LABEL_SAMPLE = 150
LOST_AT_KILL_S = 0.5
"""A kill -9 may lose the log records of predictions answered this shortly before it."""


def _sample(sent: list[Sent], most: int = LABEL_SAMPLE) -> list[Sent]:
    answered = [s for s in sent if s.ok]
    step = max(1, len(answered) // most)
    return answered[::step][:most]


def _failed(sent: list[Sent]) -> list[Sent]:
    return [s for s in sent if not s.ok]


def _all_healthy(stack: Stack) -> bool:
    with httpx.Client(timeout=2) as client:
        for replica in stack.replicas:
            try:
                if client.get(f"{replica.url}/health").json()["status"] != "ok":
                    return False
            except (httpx.HTTPError, ValueError, KeyError):
                return False
    return True


def _load_figures(figures: FaultFigures, load: SteadyLoad) -> None:
    failed = _failed(load.sent)
    figures.add("requests sent", len(load.sent))
    figures.add("requests failed", len(failed))
    if failed:
        figures.add("first failure", f"{failed[0].status} {failed[0].error[:80]}")


def test_labels_through_the_balancer_join_on_any_replica(stack: Stack, report: Any) -> None:
    """Predictions on one replica, their labels on the others; and both through HAProxy."""
    first, *others = stack.replicas
    direct: list[Sent] = []
    with httpx.Client(base_url=first.url, timeout=15) as client:
        for index in range(60):
            body = client.post("/v1/predict", json=order_for(index)).json()
            now = time.monotonic()
            direct.append(
                Sent(now, now, 200, body["prediction_id"], body["predicted_delivery_time_min"])
            )
    # Labels straight to the other replicas: none of them made these predictions.
    elsewhere = [
        send_labels(replica.url, stack.feedback_headers, direct[i :: len(others)])
        for i, replica in enumerate(others)
    ]
    with SteadyLoad(stack.url, order_for, threads=3) as load:
        load.wait_for(150)
    balanced = send_labels(stack.url, stack.feedback_headers, list(reversed(load.sent)))

    joined = sum(result.joined for result in elsewhere) + balanced.joined
    sent = len(direct) + len(balanced.statuses)
    figures = FaultFigures("labels on other replicas than their predictions")
    _load_figures(figures, load)
    figures.add("labels sent", sent)
    figures.add("labels joined", joined)
    report(figures)
    assert not _failed(load.sent)
    assert joined == sent, [r.statuses for r in (*elsewhere, balanced)]


def _outage_metrics(stack: Stack, window_s: int) -> tuple[float, float | None]:
    """(feature-store fallbacks counted in the window, the lowest prediction_log_up seen)."""
    fallbacks = stack.scalar(
        f"sum(increase(delivery_eta_feature_store_fallbacks_total[{window_s}s]))"
    )
    log_up = stack.scalar(f"min(min_over_time(delivery_eta_prediction_log_up[{window_s}s]))")
    return fallbacks or 0.0, log_up


@pytest.mark.parametrize("fault", ["restart", "freeze"])
def test_redis_outage_under_load(stack: Stack, report: Any, fault: str) -> None:
    pids = [replica.proc.pid for replica in stack.replicas if replica.proc]
    with (
        HealthWatch([r.url for r in stack.replicas]) as health,
        SteadyLoad(stack.url, order_for, threads=4) as load,
    ):
        load.wait_for(200)
        outage_start = time.monotonic()
        before = list(load.sent)
        if fault == "restart":
            stack.redis.stop()
            time.sleep(REDIS_DOWN_S)
            stack.redis.start()
        else:
            stack.redis.freeze()
            time.sleep(FREEZE_S)
            stack.redis.thaw()
        outage_end = time.monotonic()
        recovery_s = wait_until(lambda: _all_healthy(stack), timeout_s=60)
        online_s = wait_until(
            lambda: bool(load.sent) and "online" in load.sent[-1].sources, timeout_s=30
        )
        load.wait_for(100)
    time.sleep(3)  # a few scrapes after the outage
    during = load.between(outage_start, outage_end)
    window_s = int(time.monotonic() - outage_start) + 10
    fallbacks, log_up = _outage_metrics(stack, window_s)
    labels = send_labels(stack.url, stack.feedback_headers, _sample(before))
    later = send_labels(stack.url, stack.feedback_headers, _sample(during, 50))

    figures = FaultFigures(
        f"Redis {'restarted (clean stop, down 3 s)' if fault == 'restart' else 'frozen 10 s (SIGSTOP)'} under load"
    )
    _load_figures(figures, load)
    figures.add("answered during the outage", len([s for s in during if s.ok]))
    figures.add(
        "of which from default features", len([s for s in during if "default" in s.sources])
    )
    slowest = max((s.ended - s.started for s in during), default=0.0)
    figures.add("slowest answer during the outage (s)", slowest)
    figures.add("labels sent (predicted before)", len(labels.statuses))
    figures.add("labels joined (predicted before)", labels.joined)
    figures.add(
        "labels sent / joined (predicted during)", f"{len(later.statuses)} / {later.joined}"
    )
    figures.add("recovery: all /health ok (s after)", recovery_s)
    figures.add("recovery: online features again (s)", online_s)
    figures.add("fallbacks counted by Prometheus", fallbacks)
    figures.add("lowest prediction_log_up seen", log_up)
    report(figures)

    assert not _failed(load.sent), _failed(load.sent)[:3]
    assert any("default" in s.sources for s in during)
    assert [r.proc.pid for r in stack.replicas if r.proc] == pids
    assert all(r.alive() for r in stack.replicas)
    for replica in stack.replicas:
        assert "degraded" in health.statuses(replica.url, outage_start + 1, outage_end)
    assert labels.joined == len(labels.statuses), labels.statuses
    assert fallbacks > 0


def test_kill_9_of_a_replica_under_load(stack: Stack, report: Any) -> None:
    victim = stack.replicas[1]
    with SteadyLoad(stack.url, order_for, threads=4) as load:
        load.wait_for(200)
        killed_at = time.monotonic()
        victim.kill()
        detected_s = stack.wait_status(victim.name, "DOWN", timeout_s=30)
        victim.start()  # as the orchestrator restarts a dead pod
        back_s = stack.wait_status(victim.name, "UP", timeout_s=180) + detected_s
        load.wait_for(200)
    window = load.between(killed_at, killed_at + back_s)
    # Besides the sample, every prediction answered in the second before the kill: the ones the
    # victim had answered but not yet written to the shared log die with it.
    last_second = [s for s in load.sent if s.ok and killed_at - 1.0 <= s.ended < killed_at]
    labelled = {s.prediction_id: s for s in [*_sample(load.sent), *last_second]}
    labels = send_labels(stack.url, stack.feedback_headers, list(labelled.values()))
    lost = [s for pid, s in labelled.items() if labels.statuses[str(pid)] != "joined"]

    figures = FaultFigures("kill -9 of one replica of 3 under load")
    _load_figures(figures, load)
    figures.add("requests while it was gone", len(window))
    figures.add("out of rotation after (s)", detected_s)
    figures.add("back in rotation after (s)", back_s)
    figures.add("labels sent", len(labels.statuses))
    figures.add("labels joined", labels.joined)
    figures.add("answered in the last 1 s before the kill", len(last_second))
    figures.add(
        "not joined: answered before the kill by (ms)",
        ", ".join(f"{(killed_at - s.ended) * 1000:.0f}" for s in lost) or "none",
    )
    report(figures)
    assert not _failed(load.sent), _failed(load.sent)[:3]
    assert stack.backend_status()[victim.name] == "UP"
    # The log is written off the request path: a kill -9 loses only what its worker had not
    # written yet, the predictions of the moment before (docs/prediction-log.md).
    assert all(killed_at - s.ended < LOST_AT_KILL_S for s in lost), [
        (s.prediction_id, labels.statuses[str(s.prediction_id)]) for s in lost
    ]


def test_rolling_sigterm_restart_under_load(stack: Stack, report: Any) -> None:
    with SteadyLoad(stack.url, order_for, threads=4) as load:
        load.wait_for(200)
        rolled_at = time.monotonic()
        exits: list[float] = []
        for replica in stack.replicas:
            exits.append(replica.terminate())
            replica.start()
            stack.wait_status(replica.name, "UP", timeout_s=180)
        roll_s = time.monotonic() - rolled_at
        load.wait_for(200)
    labels = send_labels(stack.url, stack.feedback_headers, _sample(load.sent))

    figures = FaultFigures(f"rolling SIGTERM restart of {len(stack.replicas)} replicas under load")
    _load_figures(figures, load)
    figures.add("whole roll (s)", roll_s)
    figures.add("slowest SIGTERM -> exit (s)", max(exits))
    figures.add("labels sent", len(labels.statuses))
    figures.add("labels joined", labels.joined)
    report(figures)
    assert not _failed(load.sent), _failed(load.sent)[:3]
    assert labels.joined == len(labels.statuses), labels.statuses
