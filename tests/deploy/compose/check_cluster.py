"""Black-box check of the Switchboard cluster that docker-compose.yml starts.

Everything goes through the ports the compose file publishes: the load balancer (dashboard, HTTP
API, WebSocket, the device list), NATS (for a backend publish and JetStream) and batch-ingest. The only look
behind the curtain is `podman kill` of one gateway container, found by its compose labels.

    python check_cluster.py --http http://127.0.0.1:8000 --nats nats://127.0.0.1:4222 \
        --batch-ingest http://127.0.0.1:8090 --secret S --api-key K --project P [--demo]

Exit status 0 when every check passed; each check prints one line with its duration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import jwt
import msgpack
import nats
import websockets
from websockets.asyncio.client import ClientConnection, connect

ROOM = "compose.check"
# The demo profile's mock devices (service device-register in docker-compose.yml).
DEMO_DEVICES = ("demo-opm-1", "demo-opm-2")
SUBPROTOCOL = "switchboard.v1.json"
QUIET = 1.5  # seconds to wait for duplicates after a delivery


class CheckFailed(Exception):
    pass


def step(name: str):
    """Decorator: runs an async check, prints its name, outcome and duration."""

    def wrap(func):
        async def run(*args, **kwargs):
            started = time.monotonic()
            try:
                result = await func(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - printed, then re-raised
                print(f"  FAIL {name} ({time.monotonic() - started:.1f}s): {error}", flush=True)
                raise
            print(f"  ok   {name} ({time.monotonic() - started:.1f}s)", flush=True)
            return result

        return run

    return wrap


def http(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def token(secret: str, sub: str, rooms: list[str], role: str = "viewer") -> str:
    claims = {"sub": sub, "exp": int(time.time()) + 900, "rooms": rooms, "role": role}
    return jwt.encode(claims, secret, algorithm="HS256")


class Client:
    """One WebSocket connection through the load balancer; room messages land in a queue."""

    def __init__(self, name: str, ws: ClientConnection, established: dict):
        self.name = name
        self.ws = ws
        self.server_id: str = established["server_id"]
        self.messages: asyncio.Queue[dict] = asyncio.Queue()
        self.control: asyncio.Queue[dict] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, name: str, ws_url: str, jwt_token: str) -> "Client":
        ws = await connect(f"{ws_url}?token={jwt_token}", subprotocols=[SUBPROTOCOL], open_timeout=5)
        first = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if first.get("type") != "connection_established":
            raise CheckFailed(f"{name}: first frame is {first}")
        return cls(name, ws, first)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind in ("heartbeat",):
                    continue
                if "room" in frame and kind not in ("error",):
                    await self.messages.put(frame)
                else:
                    await self.control.put(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed.set()

    async def send(self, frame: dict) -> None:
        await self.ws.send(json.dumps(frame))

    async def expect_control(self, kind: str, timeout: float = 5) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CheckFailed(f"{self.name}: no {kind} within {timeout}s")
            frame = await asyncio.wait_for(self.control.get(), remaining)
            if frame.get("type") == kind:
                return frame
            if frame.get("type") == "error":
                raise CheckFailed(f"{self.name}: error frame {frame}")

    async def subscribe(self, rooms: list[str]) -> None:
        await self.send({"type": "subscribe", "rooms": rooms})
        reply = await self.expect_control("subscribed")
        if sorted(reply["rooms"]) != sorted(rooms):
            raise CheckFailed(f"{self.name}: subscribed {reply}")

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


async def exactly_once(clients: list[Client], event: str, marker: str, timeout: float = 10) -> None:
    """Every client receives the room message `event` carrying `marker` once, and no copy."""
    await asyncio.gather(*(received_once(client, event, marker, timeout) for client in clients))


async def received_once(client: Client, event: str, marker: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    got = 0
    while True:
        wait = deadline - time.monotonic()  # after the first copy: QUIET seconds for a second
        if wait <= 0:
            break
        try:
            frame = await asyncio.wait_for(client.messages.get(), wait)
        except asyncio.TimeoutError:
            break
        if frame.get("type") == event and frame.get("room") == ROOM and frame["data"].get("marker") == marker:
            got += 1
            if got == 1:
                deadline = time.monotonic() + QUIET
    if got != 1:
        raise CheckFailed(f"{client.name} (on {client.server_id}) received {event} {got} times, expected once")


def gateway_container(project: str, server_id: str) -> str:
    """The container of the gateway whose server_id is gw-N (service gateway-N)."""
    service = "gateway-" + server_id.removeprefix("gw-")
    names = subprocess.run(
        ["podman", "ps", "--filter", f"label=io.podman.compose.project={project}",
         "--filter", f"label=com.docker.compose.service={service}", "--format", "{{.Names}}"],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    if len(names) != 1:
        raise CheckFailed(f"expected one running container of {service}, found {names}")
    return names[0]


class Checks:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.ws_url = args.http.replace("http://", "ws://") + "/api/ws/connect"
        self.clients: list[Client] = []
        self.attempts = 0

    def new_token(self, rooms: list[str]) -> str:
        self.attempts += 1  # a fresh `sub` each time: 10 new connections per user per minute
        return token(self.args.secret, f"compose-check-{self.attempts}", rooms)

    @step("load balancer serves the dashboard, health and stats on one port")
    async def http_surface(self) -> None:
        for path, expect in (("/lb/healthz", b"ok"), ("/healthz", b""), ("/readyz", b""), ("/", b"<html")):
            status, body = http("GET", self.args.http + path)
            if status != 200 or expect.lower() not in body.lower():
                raise CheckFailed(f"GET {path}: {status} {body[:120]!r}")
        status, body = http("GET", self.args.http + "/api/ws/stats")
        if status != 200:
            raise CheckFailed(f"GET /api/ws/stats: {status} {body[:200]!r}")

    @step("a token from deploy/compose/dev-token.sh opens a dashboard session")
    async def dev_token(self) -> None:
        status, body = http("GET", f"{self.args.http}/?token={self.args.dev_token}")
        if status != 200:
            raise CheckFailed(f"dashboard with the token: {status}")
        client = await Client.open("dev-token", self.ws_url, self.args.dev_token)
        try:
            await client.subscribe(["nodes", ROOM])
        finally:
            await client.close()

    @step("two clients through the load balancer land on different gateways")
    async def two_gateways(self) -> None:
        first = await Client.open("client-a", self.ws_url, self.new_token([ROOM]))
        for _ in range(10):
            second = await Client.open("client-b", self.ws_url, self.new_token([ROOM]))
            if second.server_id != first.server_id:
                break
            await second.close()
        else:
            raise CheckFailed(f"every connection landed on {first.server_id}")
        self.clients = [first, second]
        print(f"       client-a on {first.server_id}, client-b on {second.server_id}")
        for client in self.clients:
            await client.subscribe([ROOM])

    @step("HTTP publish (POST /api/ws/publish) reaches both clients exactly once")
    async def http_publish(self, marker: str) -> None:
        status, body = http("POST", self.args.http + "/api/ws/publish",
                            {"room": ROOM, "type": "compose_http", "data": {"marker": marker}},
                            token=self.args.api_key)
        if status // 100 != 2:
            raise CheckFailed(f"publish: {status} {body[:200]!r}")
        await exactly_once(self.clients, "compose_http", marker)

    @step("NATS publish (MessagePack on sb.room.<room>) reaches both clients exactly once")
    async def nats_publish(self) -> None:
        nc = await nats.connect(self.args.nats, connect_timeout=5)
        try:
            payload = msgpack.packb({"type": "compose_nats", "data": {"marker": "nats-1"}})
            await nc.publish(f"sb.room.{ROOM}", payload)
            await nc.flush()
        finally:
            await nc.close()
        await exactly_once(self.clients, "compose_nats", "nats-1")

    @step("node agents (demo profile) show up online in room nodes")
    async def node_agents(self) -> None:
        watcher = await Client.open("nodes-watcher", self.ws_url, self.new_token(["nodes"]))
        try:
            await watcher.subscribe(["nodes"])
            want = {"node-1", "node-2", "node-3"}
            deadline = time.monotonic() + 40
            seen: set[str] = set()
            while time.monotonic() < deadline:
                try:
                    frame = await asyncio.wait_for(watcher.messages.get(), deadline - time.monotonic())
                except asyncio.TimeoutError:
                    break
                if frame.get("type") != "node_status_update":
                    continue
                seen = {node["node_id"] for node in frame["data"].get("nodes", []) if node.get("online")}
                if want <= seen:
                    print(f"       online: {sorted(seen)}")
                    return
            raise CheckFailed(f"nodes online {sorted(seen)}, expected {sorted(want)}")
        finally:
            await watcher.close()

    @step("device reader (demo profile): a mock device's readings reach a WebSocket client in room devices.<id>.m1")
    async def device_readings(self) -> None:
        room = f"devices.{DEMO_DEVICES[0]}.m1"
        watcher = await Client.open("device-watcher", self.ws_url, self.new_token([room]))
        try:
            await watcher.subscribe([room])
            deadline = time.monotonic() + 45  # device-register retries until the reader is up
            readings: list[dict] = []
            while time.monotonic() < deadline and len(readings) < 2:
                try:
                    frame = await asyncio.wait_for(watcher.messages.get(), deadline - time.monotonic())
                except asyncio.TimeoutError:
                    break
                if frame.get("room") == room and frame.get("type") == "data":
                    readings.append(frame.get("data") or {})
            if len(readings) < 2:
                raise CheckFailed(f"{len(readings)} data messages in room {room} within 45 s, expected 2 or more")
            print(f"       {room} on {watcher.server_id}: {json.dumps(readings[-1])[:200]}")
        finally:
            await watcher.close()

    @step("GET /api/ws/devices through the load balancer lists the demo devices")
    async def device_list(self) -> None:
        deadline = time.monotonic() + 20
        status, body = 0, b""
        while time.monotonic() < deadline:
            status, body = http("GET", self.args.http + "/api/ws/devices")
            if status == 404:
                # The gateway's device endpoint came with the device reader; an older gateway has
                # no such route.
                print("       SKIPPED: this gateway has no GET /api/ws/devices (404); not checked")
                return
            if status == 200:
                listed = {device.get("device_id") for device in json.loads(body)}
                if set(DEMO_DEVICES) <= listed:
                    print(f"       listed: {sorted(listed)}")
                    return
            await asyncio.sleep(1)
        raise CheckFailed(f"GET /api/ws/devices: {status} {body[:300]!r}, expected {list(DEMO_DEVICES)}")

    @step("a batch POSTed to batch-ingest lands in JetStream stream SB_BATCHES (once)")
    async def batch(self) -> None:
        stamp = f"{time.time_ns():x}"
        batch = {
            "public_key": f"compose-check-{stamp}",
            "block_hash": "0x" + stamp.rjust(16, "0"),
            "block_height": 4242,
            "nonces": [1, 2, 3],
            "dist": [0.25, 0.5, 0.75],
            "node_id": 7,
        }
        url = self.args.batch_ingest + "/v1/poc-batches/generated"
        status, body = http("POST", url, batch)
        answer = json.loads(body or b"{}")
        if status != 200 or answer.get("status") != "stored":
            raise CheckFailed(f"callback: {status} {body[:300]!r}")
        status, body = http("POST", url, batch)
        again = json.loads(body or b"{}")
        if status != 200 or again.get("status") != "duplicate":
            raise CheckFailed(f"second delivery: {status} {body[:300]!r}")
        nc = await nats.connect(self.args.nats, connect_timeout=5)
        try:
            js = nc.jetstream()
            message = await js.get_msg("SB_BATCHES", answer["sequence"])
            stored = json.loads(message.data) if message.data[:1] in (b"{", b"[") else msgpack.unpackb(message.data)
            text = json.dumps(stored)
            if batch["public_key"] not in text:
                raise CheckFailed(f"stream message {answer['sequence']} is not our batch: {text[:300]}")
            info = await js.stream_info("SB_BATCHES")
            print(f"       stored as SB_BATCHES #{answer['sequence']} on {message.subject}; "
                  f"stream holds {info.state.messages} batches; second POST: duplicate by {again.get('by')}")
            if self.args.demo:
                await self.ml_node(js)
        finally:
            await nc.close()

    async def ml_node(self, js) -> None:
        """Demo profile: the registered simulated ML node's batches keep arriving."""
        deadline = time.monotonic() + 30
        status, body = http("GET", self.args.batch_ingest + "/v1/nodes")
        before = (await js.stream_info("SB_BATCHES")).state.messages
        while time.monotonic() < deadline:
            await asyncio.sleep(2)
            now = (await js.stream_info("SB_BATCHES")).state.messages
            if now >= before + 2:
                print(f"       ML node: /v1/nodes {status} {body[:160].decode(errors='replace')}; "
                      f"stream grew {before} -> {now}")
                return
        raise CheckFailed(f"no batches from the simulated ML node (stream stays at {before}); /v1/nodes: {body[:300]!r}")

    @step("Prometheus (observability profile) scrapes every Switchboard service")
    async def prometheus(self) -> None:
        want = {"switchboard-gateway": 2, "switchboard-publisher": 1, "switchboard-aggregator": 1,
                "switchboard-batch-ingest": 1, "switchboard-device-reader": 1}
        deadline = time.monotonic() + 45  # the first scrape comes within one scrape_interval
        summary: dict[str, list[str]] = {}
        while time.monotonic() < deadline:
            status, body = http("GET", self.args.prometheus + "/api/v1/targets?state=active")
            if status == 200:
                summary = {}
                for target in json.loads(body)["data"]["activeTargets"]:
                    summary.setdefault(target["labels"]["job"], []).append(target["health"])
                if all(summary.get(job, []).count("up") == count for job, count in want.items()):
                    print("       targets up: " + ", ".join(f"{job} x{len(h)}" for job, h in sorted(summary.items())))
                    return
            await asyncio.sleep(2)
        raise CheckFailed(f"targets not all up: {summary}")

    @step("kill one gateway: its client reconnects to the other, both get a new publish")
    async def failover(self) -> None:
        victim_client, other = self.clients
        victim_id, survivor_id = victim_client.server_id, other.server_id
        container = gateway_container(self.args.project, victim_id)
        subprocess.run(["podman", "kill", container], check=True, capture_output=True)
        print(f"       killed {container} ({victim_id})")
        await asyncio.wait_for(victim_client.closed.wait(), 30)
        deadline = time.monotonic() + 45
        reconnected = None
        while time.monotonic() < deadline and reconnected is None:
            try:
                candidate = await Client.open("client-a", self.ws_url, self.new_token([ROOM]))
            except (OSError, websockets.InvalidStatus, websockets.InvalidHandshake, asyncio.TimeoutError, CheckFailed):
                await asyncio.sleep(0.5)
                continue
            reconnected = candidate
        if reconnected is None:
            raise CheckFailed("client-a could not reconnect through the load balancer")
        print(f"       client-a reconnected to {reconnected.server_id}; client-b still on {other.server_id} "
              f"(open: {not other.closed.is_set()})")
        if reconnected.server_id != survivor_id:
            raise CheckFailed(f"client-a reconnected to {reconnected.server_id}, expected {survivor_id}")
        if other.closed.is_set():
            raise CheckFailed("client-b lost its connection to the surviving gateway")
        await reconnected.subscribe([ROOM])
        self.clients = [reconnected, other]
        status, body = http("POST", self.args.http + "/api/ws/publish",
                            {"room": ROOM, "type": "compose_http", "data": {"marker": "after-failover"}},
                            token=self.args.api_key)
        if status // 100 != 2:
            raise CheckFailed(f"publish after failover: {status} {body[:200]!r}")
        await exactly_once(self.clients, "compose_http", "after-failover")
        # New connections go to the live replica only.
        for _ in range(3):
            probe = await Client.open("probe", self.ws_url, self.new_token([ROOM]))
            landed = probe.server_id
            await probe.close()
            if landed != survivor_id:
                raise CheckFailed(f"a new connection landed on {landed} after {victim_id} died")

    async def run(self) -> None:
        await self.http_surface()
        if self.args.prometheus:
            await self.prometheus()
        if self.args.dev_token:
            await self.dev_token()
        await self.two_gateways()
        await self.http_publish("http-1")
        await self.nats_publish()
        if self.args.demo:
            await self.node_agents()
            await self.device_readings()
            await self.device_list()
        await self.batch()
        if not self.args.no_kill:
            await self.failover()
        started = time.monotonic()
        await asyncio.gather(*(client.close() for client in self.clients))
        print(f"  ok   clients closed ({time.monotonic() - started:.1f}s)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", required=True)
    parser.add_argument("--nats", required=True)
    parser.add_argument("--batch-ingest", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--demo", action="store_true")
    parser.add_argument("--dev-token", help="a token of deploy/compose/dev-token.sh to try")
    parser.add_argument("--prometheus", help="Prometheus URL: check that it scrapes every service")
    parser.add_argument("--no-kill", action="store_true")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        asyncio.run(Checks(args).run())
    except Exception as error:  # noqa: BLE001
        print(f"cluster check failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(f"cluster check passed ({time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
