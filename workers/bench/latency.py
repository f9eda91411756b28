"""A TCP proxy that delays each direction: a database in another zone, on loopback.

``jobordre bench --db-latency-ms D`` puts one between the workers and PostgreSQL (the
kernel here has no ``netem``). Each chunk read is written to the other side ``D`` ms
later, in order; asyncio's timers fire on the event loop's millisecond clock, so the round
trip it adds is measured and printed, not assumed.

It also counts, per direction change, the client's *exchanges*: a client → server chunk
that follows server → client data on the same connection (or opens it). A client that
waits for each answer before it speaks again makes one exchange per round trip, so
exchanges per command are the round trips a command costs, counted from outside.

Run as ``python -m workers.bench.latency LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS
STATS_FILE``: it prints ``latency proxy ready`` once it listens, and rewrites
``STATS_FILE`` (JSON: ``exchanges``, ``connections``) whenever a count changed, at most
every :data:`STATS_EVERY_S`.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

#: How often the counts are written to the stats file at most, in seconds.
STATS_EVERY_S = 0.05
#: Bytes read at a time.
CHUNK = 65536


class Counts:
    """What the proxy saw."""

    def __init__(self) -> None:
        self.exchanges = 0
        self.connections = 0

    def as_json(self) -> str:
        return json.dumps({"exchanges": self.exchanges, "connections": self.connections})


async def _pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay_s: float,
    turn: list[str],
    side: str,
    counts: Counts,
) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``delay_s`` later, in order."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                writer.close()
                return
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    delivering = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(CHUNK)
            if side == "client" and data and turn[0] != "client":
                counts.exchanges += 1
            turn[0] = side
            await queue.put((loop.time() + delay_s, data))
            if not data:
                break
        await delivering
    except (ConnectionError, asyncio.CancelledError):
        delivering.cancel()
        writer.close()


async def serve(listen_port: int, host: str, port: int, delay_ms: float, stats: Path) -> None:
    """Proxy ``127.0.0.1:listen_port`` to ``host:port`` until killed."""
    counts = Counts()
    delay_s = delay_ms / 1000

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        counts.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection(host, port)
        except OSError:
            client_w.close()
            return
        turn = ["server"]
        await asyncio.gather(
            _pump(client_r, server_w, delay_s, turn, "client", counts),
            _pump(server_r, client_w, delay_s, turn, "server", counts),
            return_exceptions=True,
        )

    async def write_stats() -> None:
        written = ""
        while True:
            text = counts.as_json()
            if text != written:
                stats.write_text(text)
                written = text
            await asyncio.sleep(STATS_EVERY_S)

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    stats.write_text(counts.as_json())
    print("latency proxy ready", flush=True)
    async with server:
        await asyncio.gather(server.serve_forever(), write_stats())


def main() -> None:
    """The command line of the module docstring."""
    listen_port, host, port, delay_ms, stats = sys.argv[1:6]
    asyncio.run(serve(int(listen_port), host, int(port), float(delay_ms), Path(stats)))


if __name__ == "__main__":
    main()
