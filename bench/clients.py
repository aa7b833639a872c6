"""A client process: opens many WebSocket connections and times every update they receive."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import resource
import time

import websockets

CONNECT_CONCURRENCY = 200
MARKER = '"timestamp":"'


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def sent_at(text: str) -> float | None:
    """Return the update's timestamp (seconds since the epoch) without parsing the whole frame."""
    start = text.find(MARKER)
    if start < 0 or '"odds_update"' not in text[:40]:
        return None
    start += len(MARKER)
    return dt.datetime.fromisoformat(text[start : text.index('"', start)]).timestamp()


async def _run(urls: list[str], count: int, expected: int, connected, go, timeout_s: float) -> dict:
    connect_times: list[float] = []
    latencies: list[float] = []
    received = [0] * count
    last_at = [0.0]
    failures: list[str] = []
    all_connected = asyncio.Event()
    sockets = []
    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(index: int) -> None:
        url = urls[index % len(urls)]
        try:
            async with limit:
                started = time.perf_counter()
                ws = await websockets.connect(url, max_size=None, compression=None, ping_interval=None, open_timeout=60)
                initial = json.loads(await asyncio.wait_for(ws.recv(), 60))  # initial_state
                await ws.send(json.dumps({"type": "subscribe", "race_id": initial["race_id"]}))
                while '"subscribed"' not in await asyncio.wait_for(ws.recv(), 60):
                    pass
                connect_times.append(time.perf_counter() - started)
            sockets.append(ws)
        except Exception as error:  # counted, not raised: a benchmark reports what failed
            failures.append(f"connect: {type(error).__name__}: {error}")
            return
        if len(connect_times) + len(failures) == count:
            all_connected.set()
        await all_connected.wait()
        if expected == 0:
            return
        try:
            while received[index] < expected:
                text = await ws.recv()
                at = sent_at(text)
                if at is not None and at >= go_at[0]:  # not the odds a joiner is sent on connect
                    now = time.time()
                    latencies.append(now - at)
                    received[index] += 1
                    last_at[0] = now
        except Exception as error:
            failures.append(f"receive: {type(error).__name__}: {error}")

    go_at = [float("inf")]
    storm_started = time.perf_counter()
    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    await all_connected.wait()
    storm_s = time.perf_counter() - storm_started
    go_at[0] = time.time()  # every update of the scenario is published after this
    connected.set()
    await asyncio.get_running_loop().run_in_executor(None, go.wait)
    done, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {
        "connect_times": connect_times,
        "storm_s": storm_s,
        "latencies": latencies,
        "received": sum(received),
        "failures": failures[:20],
        "failure_count": len(failures),
        "last_receive_at": last_at[0],
    }


def client_process(urls, count, expected, connected, go, timeout_s, results) -> None:
    raise_file_limit()
    results.put(asyncio.run(_run(urls, count, expected, connected, go, timeout_s)))
