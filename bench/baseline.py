"""
The baseline: a minimal `websockets` server holding the same clients and broadcasting the same
pre-encoded odds_update with websockets.broadcast(), the Python ceiling for this fan-out.

    python -m bench.baseline --port 9100 --initial-state FILE

Clients connect to any path and get the initial_state text from FILE; the driver connects to
/control and sends the odds to publish (a JSON list), one message a broadcast.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json

from websockets.asyncio.server import broadcast, serve

CLIENTS: set = set()
SEQ = [0]


async def main(port: int, initial_state: str, race_id: int) -> None:
    async def handler(connection) -> None:
        if connection.request.path == "/control":
            async for command in connection:
                odds = json.loads(command)
                SEQ[0] += 1
                timestamp = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
                text = json.dumps(
                    {"type": "odds_update", "race_id": race_id, "seq": SEQ[0], "timestamp": timestamp, "odds": odds},
                    separators=(",", ":"),
                )
                broadcast(CLIENTS, text)
                await connection.send("ok")
            return
        CLIENTS.add(connection)
        try:
            await connection.send(initial_state)
            async for message in connection:  # subscribe, as every client sends
                if json.loads(message).get("type") == "subscribe":
                    await connection.send(json.dumps({"type": "subscribed", "race_id": race_id, "seq": SEQ[0]}))
        finally:
            CLIENTS.discard(connection)

    async with serve(handler, "127.0.0.1", port, compression=None, max_size=2**16, backlog=2048, ping_interval=20):
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--initial-state", required=True)
    parser.add_argument("--race-id", type=int, required=True)
    args = parser.parse_args()
    with open(args.initial_state) as file:
        text = file.read()
    asyncio.run(main(args.port, text, args.race_id))
