#!/usr/bin/env bash
# Build the air-gapped base image: a minimal Debian bookworm root filesystem with the
# distribution's Python 3.11 (same minor version, so the same cp311 wheel ABI as the
# project's Python 3.11), made with debootstrap from Debian's package archive and turned
# into an image with `docker import`.
#
# Why: this machine cannot reach Docker Hub, so `python:3.11-slim` cannot be pulled.
# Users with Docker Hub don't need this (make image BASE_IMAGE=python:3.11-slim).
#
# Contents, on purpose:
#   - python3, python3-venv (the bento's Dockerfile template makes /app/.venv with
#     `python3 -m venv`), bash (BentoML's entrypoint.sh is a bash script),
#     passwd (groupadd/useradd for the non-root `bentoml` user), ca-certificates.
#   - NO compilers, git, apt caches, docs, man pages or locales: the BentoML default
#     template installs build-essential + git, which is most of its 1.28 GB.
#   - The host's CA bundle (/etc/ssl/certs/ca-certificates.crt) is copied in, so that
#     pip inside `docker build` trusts the same TLS roots as the host (this machine's
#     egress to the package registry goes through an inspecting proxy). It is a
#     build-time need; the running service makes no outbound TLS calls.
#
# Usage: base-image.sh [TAG]     (default delivery-eta-base:bookworm-py311)
# Env:   DEBIAN_MIRROR  override the archive URL (default: the host's own apt source)
#        ROOTFS_DIR     where to debootstrap (default /var/tmp/delivery-eta-rootfs)
#        FORCE=1        rebuild even if the tag exists
set -euo pipefail

TAG="${1:-delivery-eta-base:bookworm-py311}"
SUITE="bookworm"
ROOTFS_DIR="${ROOTFS_DIR:-/var/tmp/delivery-eta-rootfs}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
PACKAGES="python3,python3-venv,ca-certificates,bash,passwd"

log() { printf '[base-image] %s\n' "$*" >&2; }

if [ "${FORCE:-0}" != "1" ] && docker image inspect "$TAG" >/dev/null 2>&1; then
  log "$TAG already exists (FORCE=1 to rebuild)"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# Use the same archive the host's apt uses (a mirror or proxy the machine is set up
# for) rather than hard-coding one; DEBIAN_MIRROR wins when set.
detect_mirror() {
  local m=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    # deb822 format: the first "URIs:" of a stanza whose Suites list has the plain suite.
    m="$(awk -v s="$SUITE" '
      /^URIs:/   {u=$2}
      /^Suites:/ {for (i=2;i<=NF;i++) if ($i==s) {print u; exit}}
      /^$/       {u=""}' /etc/apt/sources.list.d/debian.sources)"
  fi
  if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
    m="$(awk -v s="$SUITE" '$1=="deb" && $3==s {print $2; exit}' /etc/apt/sources.list)"
  fi
  printf '%s' "$m"
}
MIRROR="${DEBIAN_MIRROR:-$(detect_mirror)}"
[ -n "$MIRROR" ] || { log "no Debian mirror found; set DEBIAN_MIRROR"; exit 1; }
[ -s "$CA_BUNDLE" ] || { log "CA bundle $CA_BUNDLE missing"; exit 1; }

if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

log "debootstrap $SUITE (minbase + $PACKAGES) into $ROOTFS_DIR"
$SUDO rm -rf "$ROOTFS_DIR"
$SUDO mkdir -p "$ROOTFS_DIR"
$SUDO debootstrap --variant=minbase --include="$PACKAGES" \
  "$SUITE" "$ROOTFS_DIR" "$MIRROR" >"${ROOTFS_DIR}.log" 2>&1 || {
    log "debootstrap failed; tail of ${ROOTFS_DIR}.log:"; tail -n 30 "${ROOTFS_DIR}.log" >&2; exit 1; }

# The same apt sources as the host, so `apt-get install` works in images built on top.
printf 'deb %s %s main\n' "$MIRROR" "$SUITE" | $SUDO tee "$ROOTFS_DIR/etc/apt/sources.list" >/dev/null
$SUDO cp "$CA_BUNDLE" "$ROOTFS_DIR/etc/ssl/certs/ca-certificates.crt"

# Trim what a server image never reads. Kept: copyright files (licences travel with
# the binaries), dpkg's database (so the image can still be audited and patched).
$SUDO find "$ROOTFS_DIR/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
$SUDO find "$ROOTFS_DIR/usr/share/doc" -mindepth 1 -type d -empty -delete
$SUDO rm -rf "$ROOTFS_DIR"/usr/share/{man,info,lintian,linda} \
             "$ROOTFS_DIR"/var/cache/apt/* "$ROOTFS_DIR"/var/lib/apt/lists/* \
             "$ROOTFS_DIR"/var/cache/debconf/*-old "$ROOTFS_DIR"/var/log/* \
             "$ROOTFS_DIR"/tmp/* "$ROOTFS_DIR"/root/.cache
$SUDO find "$ROOTFS_DIR/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
# Leap-second ("right/") time zones: nothing uses them; the normal zones stay.
$SUDO rm -rf "$ROOTFS_DIR"/usr/share/zoneinfo/right
# glibc's iconv charset converters (9 MB): Python has its own codecs, and nothing
# else in a server image converts charsets through iconv.
$SUDO rm -rf "$ROOTFS_DIR"/usr/lib/x86_64-linux-gnu/gconv
# Stdlib parts a server never imports: the test suite, IDLE, lib2to3 (deprecated),
# pydoc's topic index. Compiled bytecode of the rest is kept (faster start).
$SUDO rm -rf "$ROOTFS_DIR"/usr/lib/python3.11/test "$ROOTFS_DIR"/usr/lib/python3.11/unittest/test \
             "$ROOTFS_DIR"/usr/lib/python3.11/idlelib "$ROOTFS_DIR"/usr/lib/python3.11/lib2to3 \
             "$ROOTFS_DIR"/usr/lib/python3.11/pydoc_data

PYV="$($SUDO chroot "$ROOTFS_DIR" python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
log "rootfs python: $PYV"
case "$PYV" in 3.11.*) ;; *) log "expected Python 3.11, got $PYV"; exit 1;; esac

# `docker import` loses the metadata a Dockerfile would set; give it the few that
# matter. SSL_CERT_FILE/PIP_CERT point every TLS client at the carried bundle.
log "docker import -> $TAG"
$SUDO tar -C "$ROOTFS_DIR" --numeric-owner -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["python3"]' \
  --change "LABEL org.opencontainers.image.description=\"Debian ${SUITE} minbase + python ${PYV} (debootstrap)\"" \
  - "$TAG" >/dev/null

$SUDO rm -rf "$ROOTFS_DIR"
docker image ls "$TAG" --format '{{.Repository}}:{{.Tag}} {{.Size}}'
