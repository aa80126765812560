#!/usr/bin/env bash
# Smoke-test a built delivery-eta image the way a cluster runs it, on this machine:
#   - `--network host`, bound to 127.0.0.1 on a free port (no bridge, no traffic
#     leaves loopback), read-only root filesystem with tmpfs where the server writes
#     (the same writable dirs the Kubernetes Deployment mounts as emptyDirs);
#   - start -> /readyz 200 time, printed (goal <= 10 s);
#   - a single and a batch prediction through it, /health and /metrics;
#   - it runs as a non-root uid;
#   - `docker stop` (SIGTERM) ends it on its own within the grace period
#     (no SIGKILL: exit code is not 137);
#   - the image size: at most MAX_IMAGE_MB (400) MB, as `docker images` counts (10^6 bytes).
# Usage: test-container.sh IMAGE [GRACE_SECONDS]
set -euo pipefail

IMAGE="${1:?usage: test-container.sh IMAGE [GRACE_SECONDS]}"
GRACE="${2:-30}"              # = terminationGracePeriodSeconds in deploy/k8s
READY_TIMEOUT="${READY_TIMEOUT:-120}"
START_GOAL_S="${START_GOAL_S:-10}"
# The serving image's budget (issue 25): what only offline tools need (pyarrow, matplotlib:
# the `tools` dependency group) stays out of it. A failure, unlike the start goal: size does
# not depend on how busy the machine is.
MAX_IMAGE_MB="${MAX_IMAGE_MB:-400}"
# As in the production Deployment: 2 CPUs -> 2 BentoML workers.
WORKERS="${WORKERS:-2}"
NAME="delivery-eta-test-$$"
HOST=127.0.0.1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# The project's Python builds the request bodies from the served feature contract.
PY="${PY:-$ROOT/.venv/bin/python}"

log() { printf '[test-container] %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; docker logs --tail 60 "$NAME" >&2 2>&1 || true; exit 1; }
cleanup() { docker rm -f "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT

docker image inspect "$IMAGE" >/dev/null 2>&1 || { log "image $IMAGE not found (make image)"; exit 1; }

# A port nobody listens on right now (the kernel picks it; we release it at once).
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"

url() { printf 'http://%s:%s%s' "$HOST" "$PORT" "$1"; }
# Bodies of the contract the image serves (GET /contract): python -m models.served_contract.
contract_tool() { (cd "$ROOT" && "$PY" -m models.served_contract "$@"); }
# curl is on the host; --noproxy so a proxy setting can't divert loopback calls.
http() { curl --noproxy '*' -sS --max-time 10 "$@"; }

log "starting $IMAGE on $HOST:$PORT (read-only root, --network host)"
t0="$(date +%s.%N)"
docker run -d --name "$NAME" \
  --network host \
  --read-only \
  --tmpfs /tmp:rw,nosuid,nodev,size=256m \
  --tmpfs /var/lib/bentoml:rw,nosuid,nodev,size=256m,uid=1034,gid=1034,mode=0755 \
  --tmpfs /var/lib/delivery-eta:rw,nosuid,nodev,size=256m,uid=1034,gid=1034,mode=0755 \
  -e DELIVERY_ETA_PREDICTION_LOG_PATH=/var/lib/delivery-eta/predictions.sqlite3 \
  --cap-drop ALL --security-opt no-new-privileges \
  -e BENTOML_HOME=/var/lib/bentoml \
  -e BENTOML_HOST="$HOST" \
  -e PORT="$PORT" \
  -e DELIVERY_ETA_WORKERS="$WORKERS" \
  "$IMAGE" >/dev/null

ready=""
while :; do
  code="$(http -o /dev/null -w '%{http_code}' "$(url /readyz)" 2>/dev/null || true)"
  if [ "$code" = "200" ]; then ready=1; break; fi
  [ "$(docker inspect -f '{{.State.Running}}' "$NAME" 2>/dev/null)" = "true" ] || fail "container exited before it was ready"
  if awk -v a="$t0" -v b="$(date +%s.%N)" -v t="$READY_TIMEOUT" 'BEGIN{exit !(b-a>t)}'; then break; fi
  sleep 0.1
done
t1="$(date +%s.%N)"
[ -n "$ready" ] || fail "/readyz not 200 within ${READY_TIMEOUT}s"
START_S="$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')"
log "start -> ready: ${START_S} s (goal <= ${START_GOAL_S} s)"

ORDER="$(contract_tool example --url "$(url '')")" || fail "GET /contract (the served contract's example order)"
out="$(http -f -H 'Content-Type: application/json' -d "$ORDER" "$(url /v1/predict)")" || fail "POST /v1/predict"
python3 - "$out" <<'PY' || fail "bad /v1/predict response: $out"
import json, sys
p = json.loads(sys.argv[1])
assert p["confidence_interval_lower"] <= p["predicted_delivery_time_min"] <= p["confidence_interval_upper"], p
assert p["predicted_delivery_time_min"] > 0 and p["model_version"].startswith("delivery_eta:"), p
PY
log "predict: $(python3 -c 'import json,sys; p=json.loads(sys.argv[1]); print(p["predicted_delivery_time_min"], "min", p["model_version"])' "$out")"

# The example, then the same with entity ids no store holds (the default path), then the example.
UNKNOWN="$(contract_tool example --url "$(url '')" --unknown-entities)" || fail "GET /contract"
BATCH="{\"orders\": [$ORDER, $UNKNOWN, $ORDER]}"
out="$(http -f -H 'Content-Type: application/json' -d "$BATCH" "$(url /v1/predict/batch)")" || fail "POST /v1/predict/batch"
python3 - "$out" <<'PY' || fail "bad /v1/predict/batch response: $out"
import json, sys
b = json.loads(sys.argv[1])
assert len(b["predictions"]) == 3, b
assert b["predictions"][0]["predicted_delivery_time_min"] == b["predictions"][2]["predicted_delivery_time_min"], b
PY
log "batch: 3 predictions, in order"

http -f "$(url /livez)" >/dev/null || fail "/livez"
health="$(http -f "$(url /health)")" || fail "/health"
log "health: $health"
# Read the whole page first: `curl | grep -q` under pipefail fails when grep exits
# early and curl gets SIGPIPE on a long page.
metrics="$(http -f "$(url /metrics)")" || fail "/metrics"
grep -q '^bentoml_service_request_total{' <<<"$metrics" || fail "/metrics has no bentoml_service_request_total"
log "metrics: bentoml_service_request_total exported"

uid="$(docker exec "$NAME" id -u)"
[ "$uid" != "0" ] || fail "container runs as root"
log "runs as uid $uid ($(docker exec "$NAME" id -un))"
# Nothing was written outside the tmpfs mounts (the root is read-only anyway).
[ -z "$(docker diff "$NAME" | grep -vE ' /(tmp|var/lib/bentoml|var/lib/delivery-eta)(/|$)' || true)" ] || fail "wrote to the image filesystem: $(docker diff "$NAME")"

s0="$(date +%s.%N)"
docker stop -t "$GRACE" "$NAME" >/dev/null
s1="$(date +%s.%N)"
STOP_S="$(awk -v a="$s0" -v b="$s1" 'BEGIN{printf "%.2f", b-a}')"
code="$(docker inspect -f '{{.State.ExitCode}}' "$NAME")"
[ "$code" != "137" ] || fail "docker stop had to SIGKILL after ${GRACE}s"
awk -v s="$STOP_S" -v g="$GRACE" 'BEGIN{exit !(s<g)}' || fail "stop took ${STOP_S}s (grace ${GRACE}s)"
log "docker stop: exited with code $code after ${STOP_S} s (grace ${GRACE} s)"

SIZE_B="$(docker image inspect -f '{{.Size}}' "$IMAGE")"
SIZE_MB="$(awk -v b="$SIZE_B" 'BEGIN{printf "%.0f", b/1000/1000}')"
log "image size: ${SIZE_MB} MB ($IMAGE, budget ${MAX_IMAGE_MB} MB)"
awk -v b="$SIZE_B" -v m="$MAX_IMAGE_MB" 'BEGIN{exit !(b<=m*1000*1000)}' \
  || fail "image is ${SIZE_MB} MB, over the ${MAX_IMAGE_MB} MB budget (what is big: docker run --rm --entrypoint sh $IMAGE -c 'du -sh /app/.venv/lib/python3.11/site-packages/* | sort -h | tail')"

printf 'test-container: PASS  image=%s size=%sMB start_to_ready=%ss stop=%ss uid=%s\n' \
  "$IMAGE" "$SIZE_MB" "$START_S" "$STOP_S" "$uid"
if awk -v s="$START_S" -v g="$START_GOAL_S" 'BEGIN{exit !(s>g)}'; then
  # A warning, not a failure: start time depends on how busy the machine is.
  log "WARNING: start -> ready ${START_S}s is over the ${START_GOAL_S}s goal"
fi
