"""End-to-end check through a gateway pod run by `podman kube play` (tests/deploy/helm-test.sh).

  python ws_check.py BASE_URL HMAC_SECRET API_KEY
  python ws_check.py BASE_URL HMAC_SECRET --drain

Waits for /readyz, connects a WebSocket client with an HS256 token (claims sub, exp, rooms,
role), subscribes to a room, publishes to it with POST /api/ws/publish and the API key, and
expects the message back; then waits for the publisher pod's `task_progress_update` in room
`tasks`, which crosses publisher -> NATS -> gateway. With --drain: connects, prints
"subscribed", and expects the gateway's drain when its pod is stopped: a `reconnect` frame, then
a close with 1001. Every wait is bounded.
"""

import base64
import hashlib
import hmac
import json
import sys
import time
import urllib.error
import urllib.request

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

ROOM = "helm-test.kube-play"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_token(secret: str, claims: dict) -> str:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(signature)}"


def wait_ready(base: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError) as error:
            last = error
        time.sleep(0.5)
    raise SystemExit(f"gateway not ready at {base}/readyz after {timeout:.0f} s: {last}")


def receive_until(ws, predicate, timeout: float, what: str) -> dict:
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SystemExit(f"no {what} within {timeout:.0f} s; received types: {seen}")
        try:
            frame = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            continue
        seen.append(frame.get("type"))
        if predicate(frame):
            return frame


def ws_url(base: str, secret: str, sub: str) -> str:
    token = hs256_token(secret, {"sub": sub, "exp": int(time.time()) + 300,
                                 "rooms": ["helm-test.>", "tasks"], "role": "viewer"})
    return base.replace("http://", "ws://") + f"/api/ws/connect?token={token}"


def drain(base: str, secret: str) -> None:
    wait_ready(base, 60)
    with connect(ws_url(base, secret, "helm-test-drain"), subprotocols=["switchboard.v1.json"], open_timeout=10) as ws:
        ws.send(json.dumps({"type": "subscribe", "rooms": [ROOM]}))
        receive_until(ws, lambda f: f.get("type") == "subscribed", 10, "subscribed")
        print("subscribed", flush=True)
        start = time.monotonic()
        frame = receive_until(ws, lambda f: f.get("type") == "reconnect", 60, "reconnect frame")
        print(f"reconnect after {time.monotonic() - start:.1f} s: {json.dumps(frame)}", flush=True)
        try:
            while True:
                ws.recv(timeout=max(1.0, 30 - (time.monotonic() - start)))
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            print(f"closed by the gateway with {code} after {time.monotonic() - start:.1f} s")
            if code != 1001:
                raise SystemExit(f"expected close code 1001, got {code}")
        except TimeoutError:
            raise SystemExit("the gateway did not close the connection after reconnect")


def main(base: str, secret: str, api_key: str) -> None:
    if api_key == "--drain":
        drain(base, secret)
        return
    wait_ready(base, 60)
    for path, expect in (("/healthz", ""), ("/metrics", "# TYPE ")):
        with urllib.request.urlopen(f"{base}{path}", timeout=5) as response:
            body = response.read().decode()
            assert response.status == 200 and expect in body, (path, response.status, body[:200])
    print("gateway /readyz, /healthz, /metrics: 200")
    with connect(ws_url(base, secret, "helm-test"), subprotocols=["switchboard.v1.json"], open_timeout=10) as ws:
        hello = receive_until(ws, lambda f: f.get("type") == "connection_established", 10, "connection_established")
        print(f"connected to gateway pod {hello.get('server_id')}")
        ws.send(json.dumps({"type": "subscribe", "rooms": [ROOM, "tasks"]}))
        receive_until(ws, lambda f: f.get("type") == "subscribed", 10, "subscribed")
        body = json.dumps({"room": ROOM, "type": "helm_test", "data": {"n": 1}}).encode()
        request = urllib.request.Request(f"{base}/api/ws/publish", data=body, method="POST", headers={
            "Authorization": f"Bearer {api_key}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            print(f"POST /api/ws/publish: {response.status} {response.read().decode().strip()}")
        message = receive_until(ws, lambda f: f.get("type") == "helm_test", 10, "published message")
        assert message.get("room") == ROOM and message.get("data") == {"n": 1}, message
        print(f"received the published message: {json.dumps(message)}")
        stream = receive_until(ws, lambda f: f.get("type") == "task_progress_update", 30,
                               "task_progress_update from the publisher pod")
        print(f"received the publisher pod's stream: task_progress_update seq {stream.get('seq')}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
