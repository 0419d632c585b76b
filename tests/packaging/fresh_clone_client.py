"""Client for fresh_clone_test.sh: waits for a server on 127.0.0.1:PORT,
checks that a message comes back, then sends SIGTERM to PID and checks that
the server closes the connection gracefully with 1001 ("going away").

usage: fresh_clone_client.py PORT PID"""
import asyncio
import os
import signal
import sys
import time

import websockets


async def main(port: int, pid: int) -> int:
    deadline = time.monotonic() + 20
    while True:
        try:
            ws = await websockets.connect(f"ws://127.0.0.1:{port}/", open_timeout=5)
            break
        except (OSError, asyncio.TimeoutError):
            if time.monotonic() > deadline:
                print(f"no server on port {port} after 20 s", file=sys.stderr)
                return 1
            await asyncio.sleep(0.1)
    await ws.send("hello from a fresh clone")
    got = await asyncio.wait_for(ws.recv(), 10)
    if got != "hello from a fresh clone":
        print(f"got {got!r} back", file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(ws.recv(), 10)
        print("a message instead of the close", file=sys.stderr)
        return 1
    except websockets.exceptions.ConnectionClosed as e:
        code = e.rcvd.code if e.rcvd else 1006
        if code != 1001:
            print(f"closed with {code}, want 1001 (a graceful stop)", file=sys.stderr)
            return 1
    return 0


sys.exit(asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]))))
