"""No reference leaks over 10,000 messages: a `websockets` client in a child
process drives an in-process echo server; the server process' allocated
blocks and tracked objects must not grow with the message count."""

import gc
import sys
import textwrap
import tracemalloc

import wsgate
from conftest import wait_until

CLIENT = textwrap.dedent("""
    import asyncio, sys, websockets
    async def main(port, n):
        async with websockets.connect(f"ws://127.0.0.1:{port}/", ping_interval=None,
                                      compression=None) as ws:
            sent = 0
            while sent < n:
                batch = min(100, n - sent)
                for i in range(batch):
                    k = sent + i
                    await ws.send(f"text {k}" if k % 2 else f"bin {k}".encode())
                for i in range(batch):
                    got = await ws.recv()
                    k = sent + i
                    assert got == (f"text {k}" if k % 2 else f"bin {k}".encode()), got
                sent += batch
        print("done", n, flush=True)
    asyncio.run(asyncio.wait_for(main(int(sys.argv[1]), int(sys.argv[2])), 120))
""")


def test_no_leaks_over_10000_messages(make_server, child):
    server = make_server()
    closes = []

    def handle(conn, message):
        conn.send(message)
        if conn.messages_in % 1000 == 0:  # also exercise the info path
            conn.info()

    server.on_message(handle)
    server.on_open(lambda conn: conn.data.setdefault("opened", True))
    server.on_close(lambda conn, code, reason: closes.append(code))
    server.start()

    def drive(n):
        before = len(closes)
        proc = child(["-c", CLIENT, str(server.port), str(n)])
        assert proc.wait(timeout=150) == 0, proc.err()
        assert f"done {n}" in proc.out()
        wait_until(lambda: len(closes) == before + 1 and server.connection_count == 0)

    drive(1000)  # warm-up: caches, code objects, first connection
    handler_refs = sys.getrefcount(handle)
    gc.collect()
    tracemalloc.start(10)
    snap0 = tracemalloc.take_snapshot()
    blocks0 = sys.getallocatedblocks()
    objects0 = len(gc.get_objects())

    drive(10_000)

    gc.collect()
    blocks1 = sys.getallocatedblocks()
    objects1 = len(gc.get_objects())
    snap1 = tracemalloc.take_snapshot()
    tracemalloc.stop()
    top = "\n".join(str(s) for s in snap1.compare_to(snap0, "lineno")[:10])
    assert blocks1 - blocks0 < 1500, f"allocated blocks grew by {blocks1 - blocks0}:\n{top}"
    assert objects1 - objects0 < 500, f"tracked objects grew by {objects1 - objects0}:\n{top}"
    assert sys.getrefcount(handle) == handler_refs
    assert server._conns == {}
