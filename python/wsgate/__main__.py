"""``python -m wsgate``: an echo (or broadcast) WebSocket server from the shell.

    python -m wsgate [--host ADDR] [--port N] [--set KEY=VALUE]... [--broadcast]
                     [--list-options] [--quiet]

Prints exactly one line ``listening on ws://HOST:PORT/PATH`` (``wss://`` with
``tls.cert_file``) on stdout when ready. The core's structured events go to stderr as JSON lines (through the
``wsgate`` logger). SIGINT (Ctrl-C) and SIGTERM stop it gracefully (clients
get 1001) with exit code 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import List, Optional

from ._server import Connection, Message

from . import Config, Server, WsgateError, options


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m wsgate",
        description="Echo every WebSocket message to its sender (or, with --broadcast, to "
                    "every client).")
    p.add_argument("--host", help="listen address (same as --set listen.host=ADDR)")
    p.add_argument("--port", help="listen port, 0 = ephemeral (same as --set listen.port=N)")
    p.add_argument("--set", dest="assignments", action="append", default=[],
                   metavar="KEY=VALUE", help="set any option (repeatable; see --list-options)")
    p.add_argument("--broadcast", action="store_true",
                   help="send every message to every connected client instead of echoing")
    p.add_argument("--list-options", action="store_true", help="list every option and exit")
    p.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    return p


def _list_options() -> None:
    """Every option: name, type, default, range (int and enum) and doc, in
    the same layout as ``wsgate-echo --list-options``."""
    for o in options():
        rng = f", range {o.range}" if o.range else ""
        print(f"  {o.name:<32} {o.type:<6} default \"{o.default}\"{rng}\n      {o.doc}")


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the server; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.list_options:
        _list_options()
        return 0

    cfg = Config()
    try:
        if args.host is not None:
            cfg.set_from_string(f"listen.host={args.host}")
        if args.port is not None:
            cfg.set_from_string(f"listen.port={args.port}")
        for assignment in args.assignments:
            cfg.set_from_string(assignment)
    except WsgateError as e:
        print(f"python -m wsgate: {e}", file=sys.stderr)
        return 2

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(message)s", stream=sys.stderr)

    try:
        server = Server(config=cfg)  # loads and checks the TLS files
    except WsgateError as e:
        print(f"python -m wsgate: {e}", file=sys.stderr)
        return 1
    if args.broadcast:
        @server.on_message
        def relay(conn: Connection, message: Message) -> None:
            server.broadcast(message)
    else:
        @server.on_message
        def echo(conn: Connection, message: Message) -> None:
            try:
                conn.send(message)
            except WsgateError:
                pass  # the client is going away

    # SIGINT and SIGTERM ask for a graceful stop; serve_forever sees the loop
    # end, joins it and returns. A repeated signal asks again, which is
    # harmless, so the exit code stays 0 however often it comes; one that
    # comes before the loop runs is kept by the core and stops it at once.
    def on_signal(signum: int, frame: object) -> None:
        server.request_stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        server.listen()  # binds now, so the port is known before serving
        host = str(server.options["listen.host"]) or "0.0.0.0"
        if ":" in host:
            host = f"[{host}]"
        scheme = "wss" if server.options["tls.cert_file"] else "ws"
        print(f"listening on {scheme}://{host}:{server.port}{server.options['server.path']}",
              flush=True)
        server.serve_forever()
    except WsgateError as e:
        print(f"python -m wsgate: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
