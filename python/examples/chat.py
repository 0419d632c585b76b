"""The wsgate chat demo in Python: the same server as examples/chat (C), on
the binding's topics and users API, serving the same page.

    python chat.py [--host ADDR] [--port N] [--set KEY=VALUE]... [--page FILE]

Open the printed URL (``open http://HOST:PORT/ in a browser``) in two tabs.
The page is examples/chat/index.html of this repository (or --page FILE),
served at / with ``server.add_page``; the WebSocket is
``/chat?room=NAME&name=USER``. Rooms are topics ``room:NAME``; ``/who`` lists
the room on every instance (``server.topic_presence``), ``/msg USER text``
reaches every connection of USER wherever it is, or says "USER is not
online" (``server.user_presence``). With
``--set auth.mode=jwt`` (and the ``auth.jwt.*`` options) user ids come from
the token (the page passes ``?token=`` as ``access_token``); otherwise from
``?name=`` or ``guest-N``. Ctrl-C or SIGTERM stops it gracefully (clients get
close 1001, which the page shows).

Messages from the server are JSON objects: welcome, join, leave, message,
who, direct and error (see examples/chat/index.html for how each is shown).

Rooms keep a history (``cluster.history_topics=room:*``, the last
``cluster.history_size=200`` messages; in memory, or shared through Redis
with ``cluster.redis``), and every room message carries its position:
``{"pos":"EPOCH-OFFSET",...}``. A page that reconnects adds
``from=EPOCH-OFFSET`` (the last pos it saw in its room) to the URL and gets
the messages it missed, each once and in order, then the live ones; when
they are no longer kept, or the history is unreachable, or ``from`` is not a
position, an error line says so (the resume protocol every chat follows).
"""

import argparse
import itertools
import json
import logging
import re
import signal
import sys
from pathlib import Path
from urllib.parse import parse_qs

import wsgate

PAGE = Path(__file__).resolve().parents[2] / "examples" / "chat" / "index.html"
DEFAULT_ROOM = "lobby"
MAX_TEXT = 2000
ROOM_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
USER_RE = re.compile(r"[A-Za-z0-9_.-]{1,32}")
# 4000-4099: the request is wrong; the page shows the reason and does not retry.
CLOSE_BAD_ROOM = 4001
CLOSE_BAD_NAME = 4002


def query_value(query, name):
    """The first value of ``name`` in a raw query string; None when absent."""
    values = parse_qs(query, keep_blank_values=True).get(name)
    return values[0] if values else None


def event(kind, **fields):
    return json.dumps({"type": kind, **fields}, ensure_ascii=False, separators=(",", ":"))


# The answers to a reconnect's from= (the resume protocol's error lines).
GONE = event("error", text="some missed messages are no longer kept: you may have missed messages "
                           "before this point")
HISTORY_DOWN = event("error", text="history unavailable (cluster down): missed messages are not shown")
BAD_FROM = event("error", text="bad from position: live messages only")


def with_position(payload, pos):
    """A room message as delivered: a JSON object gets its position first,
    ``{"pos":"EPOCH-OFFSET",...}``; anything else, or a message without a
    position yet (0-0: Redis is down, it is written later), is left as is,
    so a page keeps its last real position (from=0-0 would ask for the
    whole history again)."""
    if not payload.startswith("{") or (pos.epoch == 0 and pos.offset == 0):
        return payload
    rest = payload[1:]
    comma = "" if rest.lstrip().startswith("}") else ","
    return f'{{"pos":"{pos}"{comma}{rest}'


def make_server(config, page):
    server = wsgate.Server(config=config)
    server.add_page("/", page)
    guests = itertools.count(1)

    def name_the_user(request):
        # Runs on the service thread before the upgrade: decide at once.
        if request.jwt_user:
            return request.jwt_user
        name = query_value(request.query, "name")
        if not name:
            return f"guest-{next(guests)}"
        # An invalid name gets no user id; on_open closes with a reason the
        # page can show (a refused upgrade shows nothing in a browser).
        request.accept(name if USER_RE.fullmatch(name) else None)
        return None

    # auth.mode=jwt names users by their token alone and calls no handler.
    if config["auth.mode"] in ("callback", "jwt+callback"):
        server.on_auth(name_the_user)

    @server.on_history
    def embed_position(topic, pos, msg):
        # Once per room message on this instance (service thread): quick.
        if msg.type == "text":
            payload = msg.payload
            shaped = with_position(payload, pos)
            if shaped is not payload:
                msg.set(shaped)

    def tell(conn, message):
        # An answer may come after its asker left.
        try:
            conn.send(message)
        except wsgate.WsgateError:
            pass

    def resume(conn, topic, start):
        # Missed messages come first (each with its pos), then the live ones;
        # the answer only matters when something could not be given.
        def answer(position, error):
            if isinstance(error, wsgate.GoneError):
                tell(conn, GONE)
            elif isinstance(error, wsgate.ClusterError):
                tell(conn, HISTORY_DOWN)

        try:
            server.subscribe_from(conn, topic, start, callback=answer)
        except wsgate.WsgateError as e:
            # Refused at once (e.g. --set cluster.history_topics without
            # rooms): the room still works, live.
            tell(conn, event("error", text=f"{e}: live messages only"))
            conn.subscribe(topic)

    @server.on_open
    def join(conn):
        room = query_value(conn.query, "room")
        room = DEFAULT_ROOM if room is None else room
        if not ROOM_RE.fullmatch(room):
            conn.close(CLOSE_BAD_ROOM, "room must be 1-32 letters, digits, '-' or '_'")
            return
        if not conn.user_id:
            conn.close(CLOSE_BAD_NAME, "name must be 1-32 letters, digits, '.', '-' or '_'")
            return
        conn.data["room"] = room
        conn.send(event("welcome", user=conn.user_id, room=room))
        topic = f"room:{room}"
        start = query_value(conn.query, "from")
        if start is not None:
            try:
                start = wsgate.Position.parse(start)
            except wsgate.InvalidArgumentError:
                conn.send(BAD_FROM)
                start = None
        if start is None:
            conn.subscribe(topic)
        else:
            resume(conn, topic, start)
        server.publish(topic, event("join", user=conn.user_id, room=room))

    def who(conn, room):
        # The room's users on every instance (presence), sorted, each once (a
        # user may have several tabs). Handlers run on the service thread, so
        # the answer comes to a callback. With the cluster down the list holds
        # this instance's users and says so.
        def answer(entries, error):
            users = sorted({e.user_id for e in entries if e.user_id})
            tell(conn, event("who", room=room, users=users))
            if error is not None:
                tell(conn, event("error", text=f"only this server's users are listed: {error}"))

        try:
            server.topic_presence(f"room:{room}", callback=answer)
        except wsgate.WsgateError as e:
            conn.send(event("error", text=str(e)))

    def direct(conn, args):
        to, _, text = args.strip().partition(" ")
        text = text.strip()
        if not to or not text:
            conn.send(event("error", text="usage: /msg USER text"))
            return
        message = event("direct", **{"from": conn.user_id, "to": to, "text": text})

        # Once presence said where USER is: to every connection of USER on any
        # instance and back to the sender, or "not online".
        def answer(entries, error):
            if error is None and not entries:
                tell(conn, event("error", text=f"{to} is not online"))
                return
            try:
                server.send_to_user(to, message)
            except wsgate.NotFoundError:
                tell(conn, event("error", text=f"{to} is not online"))
            except wsgate.WsgateError as e:
                tell(conn, event("error", text=str(e)))
            else:
                if to != conn.user_id:
                    tell(conn, message)  # the sender's copy

        try:
            server.user_presence(to, callback=answer)
        except wsgate.WsgateError as e:
            conn.send(event("error", text=str(e)))

    @server.on_message
    def chat(conn, message):
        room = conn.data.get("room")
        if room is None:
            return
        if not isinstance(message, str):
            conn.send(event("error", text="send text messages"))
        elif len(message.encode("utf-8")) > MAX_TEXT:
            conn.send(event("error", text=f"a message is at most {MAX_TEXT} bytes"))
        elif not message:
            pass
        elif not message.startswith("/"):
            server.publish(f"room:{room}", event("message", user=conn.user_id, room=room, text=message))
        elif message == "/who" or message.startswith("/who "):
            who(conn, room)
        elif message.startswith("/msg "):
            direct(conn, message[5:])
        else:
            conn.send(event("error", text="unknown command: try /who or /msg USER text"))

    @server.on_close
    def leave(conn, code, reason):
        room = conn.data.get("room")
        if room is not None:
            server.publish(f"room:{room}", event("leave", user=conn.user_id, room=room))

    return server


def main(argv=None):
    p = argparse.ArgumentParser(description="The wsgate chat demo: open the printed URL in a browser.")
    p.add_argument("--host", help="listen address (same as --set listen.host=ADDR)")
    p.add_argument("--port", help="listen port, 0 = ephemeral (same as --set listen.port=N)")
    p.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                   help="set any wsgate option (repeatable)")
    p.add_argument("--page", type=Path, default=PAGE, help=f"the page served at / (default: {PAGE})")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    # The chat's defaults, before the command line: the page connects to
    # /chat, messages are small, a browser passes a token only in the query.
    # Rooms keep their last 200 messages for clients that come back.
    config = wsgate.Config({"server.path": "/chat", "limits.max_message_bytes": 8192,
                            "auth.token_sources": "query", "cluster.history_topics": "room:*",
                            "cluster.history_size": 200})
    try:
        if args.host is not None:
            config.set_from_string(f"listen.host={args.host}")
        if args.port is not None:
            config.set_from_string(f"listen.port={args.port}")
        for assignment in args.assignments:
            config.set_from_string(assignment)
    except wsgate.WsgateError as e:
        print(f"chat.py: {e}", file=sys.stderr)
        return 2
    if config["server.path"] != "/chat":
        print(f"chat.py: the page connects to /chat: server.path cannot be {config['server.path']!r}",
              file=sys.stderr)
        return 2
    if config["auth.mode"] == "none":
        config["auth.mode"] = "callback"  # on_auth names the users, so /msg can find them
    try:
        page = args.page.read_text(encoding="utf-8")
    except OSError as e:
        print(f"chat.py: cannot read the page: {e}", file=sys.stderr)
        return 1

    try:
        server = make_server(config, page)
    except wsgate.WsgateError as e:
        print(f"chat.py: {e}", file=sys.stderr)
        return 1

    def on_signal(signum, frame):
        server.request_stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        server.listen()
        host = str(server.options["listen.host"])
        if host in ("", "0.0.0.0", "::"):
            host = "localhost"
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if server.options["tls.cert_file"] else "http"
        print(f"open {scheme}://{host}:{server.port}/ in a browser", flush=True)
        server.serve_forever()
    except wsgate.WsgateError as e:
        print(f"chat.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
