#!/usr/bin/env bash
# Run the compose stack (API image + Redis + Prometheus, host networking, loopback).
#   compose.sh up IMAGE     build the Redis/Prometheus images if needed, start, wait ready
#   compose.sh test IMAGE   smoke test: predictions really read their features from Redis
#   compose.sh down IMAGE   stop and remove containers and the Prometheus volume
# Env: API_PORT (3000), REDIS_PORT (6379), PROM_PORT (9090), BASE_IMAGE,
#      REDIS_IMAGE / PROMETHEUS_IMAGE (Docker Hub images instead of local builds).
set -euo pipefail

CMD="${1:?usage: compose.sh up|test|down IMAGE}"
export API_IMAGE="${2:?usage: compose.sh up|test|down IMAGE}"
export API_PORT="${API_PORT:-3000}" REDIS_PORT="${REDIS_PORT:-6379}" PROM_PORT="${PROM_PORT:-9090}"
export BASE_IMAGE="${BASE_IMAGE:-delivery-eta-base:bookworm-py311}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# The project's Python builds request bodies from the served feature contract.
PY="${PY:-$ROOT/.venv/bin/python}"
PROJECT=delivery-eta
RUNDIR="${TMPDIR:-/tmp}/delivery-eta-compose"
export PROM_CONFIG="$RUNDIR/prometheus.yml"

log() { printf '[compose] %s\n' "$*" >&2; }

# `docker compose` (v2 plugin) when present, else Debian's docker-compose (v1.29,
# which understands the Compose Specification format used here).
if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
else
  if ! command -v docker-compose >/dev/null 2>&1; then
    log "installing Debian docker-compose"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
  fi
  COMPOSE=(docker-compose)
fi
dc() { "${COMPOSE[@]}" -p "$PROJECT" -f "$HERE/docker-compose.yml" "$@"; }

http() { curl --noproxy '*' -sS --max-time 10 "$@"; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Bearer tokens of /v1/feedback and /metrics (docs/security.md): made once per run
# directory, handed to the API through its environment and to Prometheus as a file.
# The files are world-readable (Prometheus reads its one as its own user inside the
# container) in a directory only this user may enter.
SECRETS="$RUNDIR/secrets"
export METRICS_TOKEN_FILE="$SECRETS/metrics-token" FEEDBACK_TOKEN_FILE="$SECRETS/feedback-token"
ensure_tokens() {
  mkdir -p "$SECRETS" && chmod 700 "$SECRETS"
  for f in "$METRICS_TOKEN_FILE" "$FEEDBACK_TOKEN_FILE"; do
    [ -s "$f" ] || (umask 022 && python3 -c 'import secrets; print(secrets.token_hex(32))' > "$f")
  done
  METRICS_TOKEN="$(cat "$METRICS_TOKEN_FILE")" FEEDBACK_TOKEN="$(cat "$FEEDBACK_TOKEN_FILE")"
  export METRICS_TOKEN FEEDBACK_TOKEN
}

render_prometheus_config() {
  ensure_tokens
  sed -e "s/\${API_PORT}/$API_PORT/g" -e "s/\${PROM_PORT}/$PROM_PORT/g" \
    "$HERE/prometheus.yml.tmpl" > "$PROM_CONFIG"
}

# Ready = the stack's own api container is running, has not restarted (a restart
# loop means it could not bind its port, and someone else's server may be answering
# there), and /readyz on its port says 200.
api_container_ok() {
  local id; id="$(dc ps -q api 2>/dev/null)"
  [ -n "$id" ] && [ "$(docker inspect -f '{{.State.Running}} {{.RestartCount}}' "$id")" = "true 0" ]
}
wait_ready() {
  local deadline=$((SECONDS + ${1:-120}))
  until api_container_ok \
        && [ "$(http -o /dev/null -w '%{http_code}' "http://127.0.0.1:$API_PORT/readyz" 2>/dev/null || true)" = 200 ]; do
    if [ $SECONDS -gt $deadline ]; then
      log "API not ready on :$API_PORT"; dc ps >&2 || true; dc logs --tail 40 api >&2 || true; return 1
    fi
    sleep 0.5
  done
  # Still our container after the first 200 (it binds before it turns ready)?
  api_container_ok || { log "api container is not running cleanly"; dc logs --tail 40 api >&2; return 1; }
}

redis_cli() { dc exec -T redis redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

# Bodies and entity names from the contract the API serves (GET /contract):
# python -m models.served_contract example|entities --url URL (module docstring).
contract_tool() { (cd "$ROOT" && "$PY" -m models.served_contract "$@"); }

# predict ORDER FEATURE: the predicted minutes and where FEATURE (an entity aggregate) came from.
predict() {
  http -f -H 'Content-Type: application/json' -d "$1" "http://127.0.0.1:$API_PORT/v1/predict" \
    | python3 -c 'import json,sys; p=json.load(sys.stdin); print(p["predicted_delivery_time_min"], p["features_source"][sys.argv[1]])' "$2"
}

case "$CMD" in
  up)
    render_prometheus_config
    # Host networking: a port someone else already uses would make our container
    # crash-loop on bind. Check first, unless it is this stack that holds them.
    if [ -z "$(dc ps -q 2>/dev/null)" ]; then
      for p in "$API_PORT" "$REDIS_PORT" "$PROM_PORT"; do
        if port_busy "$p"; then
          log "127.0.0.1:$p is already in use; set API_PORT / REDIS_PORT / PROM_PORT"; exit 1
        fi
      done
    fi
    # Build only the local helper images that don't exist yet (Docker Hub images
    # given via REDIS_IMAGE/PROMETHEUS_IMAGE are pulled by `up` instead).
    for svc in redis prometheus; do
      var="$(echo "$svc" | tr '[:lower:]' '[:upper:]')_IMAGE"
      img="${!var:-delivery-eta-$svc:bookworm}"
      if [ -z "${!var:-}" ] && ! docker image inspect "$img" >/dev/null 2>&1; then
        log "building $img from $BASE_IMAGE + Debian's package"
        dc build "$svc" >&2
      fi
    done
    dc up -d --no-build
    wait_ready 180
    log "up: API http://127.0.0.1:$API_PORT  Prometheus http://127.0.0.1:$PROM_PORT  Redis 127.0.0.1:$REDIS_PORT"
    dc logs feature-seed 2>/dev/null | grep redis_keys_written >&2 || true
    ;;
  test)
    ensure_tokens
    wait_ready 60
    health="$(http -f "http://127.0.0.1:$API_PORT/health")"
    log "health: $health"
    python3 -c 'import json,sys; h=json.loads(sys.argv[1]); fs=h["feature_store"]; assert fs["backend"]=="redis" and fs["state"]=="ready", fs' "$health"
    api="http://127.0.0.1:$API_PORT"
    # The served contract's last entity field: its id, its key in Redis, its aggregate.
    read -r field entity feature <<<"$(contract_tool entities --url "$api" | tail -n 1)" \
      || { log "FAIL: cannot read the contract from $api/contract"; exit 1; }
    [ -n "${feature:-}" ] || { log "FAIL: the served contract has no entity field: nothing is read from Redis"; exit 1; }
    # One id the store holds, from its keys (delivery_eta:<snapshot>:<entity>:<id>).
    # (No `| head`: under pipefail a SIGPIPE'd redis-cli would fail the script.)
    keys="$(redis_cli --scan --pattern "delivery_eta:*:$entity:*" --count 1000)"
    key="$(printf '%s\n' "$keys" | tr -d '\r' | sed -n 1p)"
    [ -n "$key" ] || { log "FAIL: no $entity key in Redis"; exit 1; }
    id="${key#*:"$entity":}"
    order="$(contract_tool example --url "$api" --set "$field=\"$id\"")"
    read -r before source <<<"$(predict "$order" "$feature")"
    [ "$source" = "online" ] || { log "FAIL: $feature came from '$source', not the store"; exit 1; }
    # The proof that the value comes from Redis: change the entity's average in
    # Redis, predict again, expect a different ETA; then put the value back.
    orig="$(redis_cli GET "$key" | tr -d '\r')"
    redis_cli SET "$key" 95.0 >/dev/null
    read -r after _ <<<"$(predict "$order" "$feature")"
    redis_cli SET "$key" "$orig" >/dev/null
    read -r restored _ <<<"$(predict "$order" "$feature")"
    log "ETA with $field $id avg $orig: $before min; with 95.0 in Redis: $after min; restored: $restored min"
    python3 -c 'import sys; b,a,r=map(float,sys.argv[1:]); assert a>b+1 and abs(r-b)<1e-6, (b,a,r)' "$before" "$after" "$restored" \
      || { log "FAIL: the prediction did not follow the Redis value"; exit 1; }
    # Prometheus scrapes every 5 s; give it a few rounds to report the target up.
    up=""
    for _ in $(seq 1 30); do
      targets="$(http "http://127.0.0.1:$PROM_PORT/api/v1/targets?state=active" 2>/dev/null || true)"
      if python3 -c 'import json,sys; t=json.loads(sys.argv[1])["data"]["activeTargets"]; sys.exit(not any(x["labels"]["job"]=="delivery-eta" and x["health"]=="up" for x in t))' "$targets" 2>/dev/null; then
        up=1; break
      fi
      sleep 1
    done
    [ -n "$up" ] || { log "FAIL: Prometheus does not scrape delivery-eta successfully: $targets"; exit 1; }
    log "prometheus: target delivery-eta (127.0.0.1:$API_PORT/metrics) is up"
    echo "compose-test: PASS  predictions read Redis (ETA $before -> $after min when $field $id's average changed)"
    ;;
  down)
    render_prometheus_config
    dc down --volumes --remove-orphans
    ;;
  *) echo "usage: compose.sh up|test|down IMAGE" >&2; exit 2;;
esac
