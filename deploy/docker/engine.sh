#!/usr/bin/env bash
# Make sure a Docker engine is running on this machine.
#
# Why this exists: the project's machines ship only the docker *client*
# (/usr/local/bin/docker) and no engine, and Docker Hub is unreachable. We install
# Debian's `docker.io` (engine 20.10) on demand and start `dockerd` ourselves, because
# there is no systemd running as PID 1 to do it for us.
#
# The engine is started with `--bridge=none --iptables=false`: every container this
# project runs uses `--network host` (builds too: `--network=host`), so no bridge is
# needed, and no traffic can ever go to a container bridge address.
#
# Idempotent: exits 0 at once when the socket already answers.
set -euo pipefail

SOCK="${DOCKER_SOCK:-/var/run/docker.sock}"
LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
WAIT_S="${DOCKERD_WAIT_S:-60}"

log() { printf '[docker-engine] %s\n' "$*" >&2; }

# `docker info` against the socket is the real readiness check (the socket file can
# exist while dockerd is still starting, or be stale after a crash).
engine_up() { docker -H "unix://${SOCK}" info >/dev/null 2>&1; }

if engine_up; then
  log "engine already running (${SOCK})"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  # dockerd must run as root; use sudo when it is there rather than failing late.
  command -v sudo >/dev/null 2>&1 || { log "need root (or sudo) to install/start dockerd"; exit 1; }
  SUDO="sudo"
fi

if ! command -v dockerd >/dev/null 2>&1; then
  log "dockerd missing: installing Debian docker.io"
  export DEBIAN_FRONTEND=noninteractive
  # The package lists may be empty or stale on a fresh machine.
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends docker.io containerd runc iptables >/dev/null
fi

# A stale pid file from a dead dockerd makes the new one refuse to start.
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
  $SUDO rm -f /var/run/docker.pid
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  log "starting dockerd (log: ${LOG})"
  # setsid + nohup: the engine must outlive the make/CI shell that started it.
  $SUDO setsid nohup dockerd \
      --host "unix://${SOCK}" \
      --bridge=none --iptables=false --ip-masq=false \
      >>"${LOG}" 2>&1 < /dev/null &
fi

for _ in $(seq 1 "${WAIT_S}"); do
  if engine_up; then
    log "engine up: $(docker -H "unix://${SOCK}" version --format '{{.Server.Version}}' 2>/dev/null)"
    exit 0
  fi
  sleep 1
done

log "dockerd did not answer within ${WAIT_S}s; last log lines:"
tail -n 30 "${LOG}" >&2 || true
exit 1
