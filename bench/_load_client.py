"""The benches' load client, a process of its own: `python -m bench._load_client < spec.json > result.json`.

Open loop (`"kind": "quiz"`): quiz submissions arrive as a Poisson process at `rate` per second for
`seconds`, whatever the service's pace, each sent by one of `threads` threads (stdlib http.client,
one keep-alive connection per thread). An arrival is a POST /api/v1/submissions and, when the answer
is 202, long-polling GETs of its status URL (`?wait=30`) until graded (with `"prefer_wait"`, the POST
asks `Prefer: wait=30` and is mostly answered with the result itself); its latency runs from the
moment it was due to arrive, so time spent waiting for a free client thread counts (no coordinated
omission). Closed loop (`"kind": "get"`): `threads` threads request `path` back to back for `seconds`.
The result is JSON: per-arrival latencies, errors by kind, the client's own CPU and lag.
"""

from __future__ import annotations

import http.client
import json
import random
import resource
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# gunicorn closes a keep-alive connection idle for 2 s; a thread opens a new one well before that.
IDLE_RECONNECT_SECONDS = 1.0
SUBMISSION_DEADLINE_SECONDS = 120.0
WAIT_SECONDS = 30
STILL_WAITING = {"queued", "grading"}


class Reply(Exception):
    """A status the client did not expect."""


@dataclass
class Connection:
    host: str
    port: int
    connection: http.client.HTTPConnection | None = None
    last_used: float = 0.0

    def request(
        self,
        method: str,
        path: str,
        token: str | None,
        body: bytes | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        headers = {"Accept": "application/json", **(extra_headers or {})}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            fresh = self.connection is None or time.monotonic() - self.last_used > IDLE_RECONNECT_SECONDS
            if fresh:
                self.close()
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=WAIT_SECONDS + 30)
            assert self.connection is not None
            try:
                self.connection.request(method, path, body=body, headers=headers)
                response = self.connection.getresponse()
                payload = response.read()
            except (ConnectionError, http.client.HTTPException):
                self.close()
                # Only a reused connection the server had just closed is worth one more try.
                if fresh or attempt == 2:
                    raise
                continue
            self.last_used = time.monotonic()
            return response.status, json.loads(payload) if payload else None
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


class Client:
    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self._local = threading.local()

    def connection(self) -> Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = Connection(self.host, self.port)
        return connection


def one_quiz(
    client: Client, due: float, token: str, body: bytes, inline: bool, prefer_wait: bool
) -> dict[str, Any]:
    """One arrival: submit, then long-poll until graded. Times are seconds after `due`."""
    connection = client.connection()
    started = time.monotonic()
    outcome: dict[str, Any] = {"lag": started - due, "gets": 0, "due": due}
    prefer = {"Prefer": f"wait={WAIT_SECONDS}"} if prefer_wait else None
    try:
        status, answer = connection.request("POST", "/api/v1/submissions", token, body, prefer)
        outcome["post"] = time.monotonic() - due
        if status == 201 and (inline or prefer_wait):
            view = answer["submission"]
        elif status == 202 and not inline:
            view = None
            status_url = f"{answer['status_url']}?wait={WAIT_SECONDS}"
            while view is None or view["status"] in STILL_WAITING:
                if time.monotonic() - due > SUBMISSION_DEADLINE_SECONDS:
                    raise Reply("no result in time")
                status, view = connection.request("GET", status_url, token)
                outcome["gets"] += 1
                if status != 200:
                    raise Reply(f"GET {status}")
        else:
            raise Reply(f"POST {status}: {str(answer)[:200]}")
        if view["result"] is None or not view["result"]["passed"]:
            raise Reply(f"not passed: status {view['status']}")
        outcome["done"] = time.monotonic() - due
    except Reply as exc:
        outcome["error"] = str(exc)
    except Exception as exc:  # every failure is a figure of the run, never a crash
        outcome["error"] = f"{type(exc).__name__}: {exc}"[:200]
    outcome["finished"] = time.monotonic()
    return outcome


def run_quiz(spec: dict[str, Any]) -> dict[str, Any]:
    client = Client(spec["base"])
    tokens: list[str] = spec["tokens"]
    body = json.dumps({"assessment": spec["assessment"], "answers": spec["answers"]}).encode()
    rate, seconds, inline = float(spec["rate"]), float(spec["seconds"]), spec["mode"] == "inline"
    prefer_wait = bool(spec.get("prefer_wait", False))
    rng = random.Random(spec.get("seed", 12))
    futures = []
    cpu_before = _cpu()
    with ThreadPoolExecutor(max_workers=int(spec["threads"])) as pool:
        start = time.monotonic() + 0.05
        offset = 0.0
        index = int(spec.get("first_learner", 0))
        while True:
            offset += rng.expovariate(rate)
            if offset >= seconds:
                break
            due = start + offset
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            token = tokens[index % len(tokens)]
            futures.append(pool.submit(one_quiz, client, due, token, body, inline, prefer_wait))
            index += 1
        outcomes = [future.result() for future in futures]
    errors = Counter(o["error"] for o in outcomes if "error" in o)
    return {
        "arrivals": len(outcomes),
        "offered_seconds": seconds,
        "span": max((o["finished"] for o in outcomes), default=start) - start,
        "latencies": sorted(o["done"] for o in outcomes if "done" in o),
        # (seconds after the start it was due, POST answered, result): where in the run the slow ones were
        "timeline": [(o["due"] - start, o["post"], o["done"]) for o in outcomes if "done" in o],
        "post_latencies": sorted(o["post"] for o in outcomes if "post" in o and "error" not in o),
        "gets": sum(o["gets"] for o in outcomes if "error" not in o),
        "lags": sorted(o["lag"] for o in outcomes),
        "errors": dict(errors),
        "next_learner": index,
        "client_cpu": _cpu() - cpu_before,
    }


def run_get(spec: dict[str, Any]) -> dict[str, Any]:
    client = Client(spec["base"])
    seconds, path = float(spec["seconds"]), spec["path"]
    counts: Counter[str] = Counter()
    latencies: list[float] = []
    lock = threading.Lock()
    cpu_before = _cpu()
    start = time.monotonic()
    deadline = start + seconds

    def hammer() -> None:
        connection = client.connection()
        mine: list[float] = []
        while time.monotonic() < deadline:
            began = time.monotonic()
            try:
                status, _ = connection.request("GET", path, None)
                outcome = "ok" if status == 200 else f"GET {status}"
            except Exception as exc:  # counted, not raised
                outcome = type(exc).__name__
            mine.append(time.monotonic() - began)
            with lock:
                counts[outcome] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=hammer) for _ in range(int(spec["threads"]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start
    ok = counts.pop("ok", 0)
    return {
        "requests": ok,
        "seconds": elapsed,
        "latencies": sorted(latencies),
        "errors": dict(counts),
        "client_cpu": _cpu() - cpu_before,
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    spec = json.load(sys.stdin)
    result = run_quiz(spec) if spec["kind"] == "quiz" else run_get(spec)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
