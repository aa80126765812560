"""Build-time warm-up for the image (run by deploy/docker/Dockerfile.template).

Starts the real server from the bento on 127.0.0.1, waits for /readyz, sends the
requests it serves, then stops it. The point is the side effect: Python writes .pyc
files for exactly the modules serving imports, so the runtime image (read-only root,
PYTHONDONTWRITEBYTECODE=1) starts from bytecode without carrying bytecode for the
thousands of library modules it never loads.

Usage: python warmup.py BENTO_DIR
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ORDER = {
    "restaurant_id": "r_0001",
    "driver_id": "d_0001",
    "distance_km": 3.2,
    "is_peak_hour": 1,
    "order_value": 25.0,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(bento_dir: str) -> int:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "BENTOML_HOME": tempfile.mkdtemp(prefix="warm-home-")}
    log = open(os.path.join(env["BENTOML_HOME"], "serve.log"), "w+")  # noqa: SIM115
    server = subprocess.Popen(
        ["bentoml", "serve", bento_dir, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def get(path: str) -> bytes:
        with urllib.request.urlopen(base + path, timeout=10) as r:
            return r.read()

    def post(path: str, body: object) -> bytes:
        req = urllib.request.Request(
            base + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read()

    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"server exited with {server.returncode}")
            try:
                get("/readyz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("server not ready within 120 s") from None
                time.sleep(0.2)
        post("/v1/predict", ORDER)
        post("/v1/predict/batch", {"orders": [ORDER, {**ORDER, "driver_id": "new_driver"}]})
        for path in ("/livez", "/health", "/metrics", "/docs.json"):
            get(path)
    except Exception as exc:
        log.seek(0)
        sys.stderr.write(log.read()[-5000:])
        print(f"warm-up failed: {exc}", file=sys.stderr)
        server.kill()
        return 1
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    print("warm-up: predict, batch, livez, health, metrics, docs.json served")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
