"""permessage-deflate (RFC 7692) end to end against wsgate-echo.

Two clients: a raw one written here, which sends exact request headers and
exact frames (RSV bits, fragments, hand-made DEFLATE streams) and sees the
server's frames as they are; and the Python `websockets` library (Debian's
10.4) as an independent implementation.

wsgate answers the negotiation itself: it always promises
server_no_context_takeover, asks for client_no_context_takeover unless
compression.client_context_takeover=true, grants server_max_window_bits
9..15 and takes the first offer it can honour in the client's order.

Every socket wait is bounded (SOCK_TIMEOUT); every server is stopped at
teardown and must exit 0 with no sanitizer report. After each refusal or
close, the same server must still serve a new client.

Run with WSGATE_ECHO=/path/to/wsgate-echo
/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/protocol/test_deflate_e2e.py (ctest does both).
"""

import asyncio
import base64
import hashlib
import os
import socket
import struct
import sys
import time
import zlib
from typing import NamedTuple

import pytest
import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "packaging"))
from echo_proc import EchoProcess, stop_echo_processes  # noqa: E402

SOCK_TIMEOUT = 5.0
PMD = "permessage-deflate"
ENABLED = "compression.enabled=true"
CLIENT_CONTEXT = "compression.client_context_takeover=true"
TAIL = b"\x00\x00\xff\xff"  # the sync flush marker RFC 7692 leaves off
WRITE_BATCH = 64 * 1024      # tuning.write_batch_bytes default
LIMIT = 1024 * 1024          # limits.max_message_bytes default
MIN_BYTES = 128              # compression.min_bytes default
MAX_HEADER_BYTES = 16384     # the upgrade parser's bound on all header lines (431 past it)

# The answers. The server never keeps its compression context between
# messages and says so; by default it also asks the client not to keep its
# own (RFC 7692 7.1.1.2 lets it ask even when the client did not offer it).
ANSWER = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
# With compression.client_context_takeover=true, to a client that did not
# offer client_no_context_takeover.
ANSWER_KEEP = "permessage-deflate; server_no_context_takeover"
CNCT_OFFER = "permessage-deflate; client_no_context_takeover"


def windowed(answer, bits):
    """`answer` granting server_max_window_bits=bits."""
    return f"{answer}; server_max_window_bits={bits}"


OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# ---------------------------------------------------------------- servers

@pytest.fixture
def start_echo():
    """Factory: start_echo("key=value", ...) -> a listening EchoProcess.

    At teardown each server gets SIGTERM and must exit 0 within the stop
    timeout with no sanitizer report; anything left is killed."""
    procs = []

    def start(*sets):
        args = []
        for s in sets:
            args += ["--set", s]
        p = EchoProcess(*args)
        p.compression_enabled = ENABLED in sets
        p.client_context = CLIENT_CONTEXT in sets
        procs.append(p)
        p.wait_listening()
        return p

    yield start
    stop_echo_processes(procs, died_is_failure=True)


def peak_rss_kib(server):
    """VmHWM of the server process: the most it has ever had resident."""
    with open(f"/proc/{server.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/PID/status")


def sanitized(server):
    """True when the server runs under ASan (its shadow memory inflates RSS)."""
    with open(f"/proc/{server.proc.pid}/maps") as f:
        return "libasan" in f.read()


# ---------------------------------------------------------------- payloads

def compressible_text(n):
    """n bytes of printable ASCII that deflate shrinks well."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[(i * 7) % len(alphabet)] for i in range(n))


def compressible(n):
    return compressible_text(n).encode()


def hex_text(n):
    """n bytes of random hex digits: shrinks to about 55 %, never to nothing."""
    return os.urandom(n // 2 + 1).hex()[:n].encode()


def far_repeats():
    """A random 600-byte block repeated after 700, 3,000, 9,000 and 20,000
    bytes of random hex: a compressor with a window above 2^9 refers back
    farther than a 2^9 window reaches."""
    block = os.urandom(600)
    out = b""
    for gap in (700, 3000, 9000, 20000):
        out += block + hex_text(gap)
    return out + block


def deflate(data, co=None, level=6):
    """One RFC 7692 message body: sync flush, 00 00 ff ff left off."""
    co = co or zlib.compressobj(level, zlib.DEFLATED, -15)
    out = co.compress(data) + co.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def deflated_size(data, level, bits=15):
    return len(deflate(data, zlib.compressobj(level, zlib.DEFLATED, -bits)))


def inflate_fresh(payload, bits=15):
    """What a server message inflates to with a FRESH raw inflater whose
    window is 2^bits: it must, since the server never takes its context over
    to the next message and keeps to the window it granted.

    The output comes in 64-byte steps: zlib then resolves every distance
    through its window (within one large output buffer it would reach back
    any distance), so a match farther back than 2^bits (+63) fails here."""
    d = zlib.decompressobj(-bits)
    out = bytearray()
    data = payload + TAIL
    while True:
        step = d.decompress(data, 64)
        out += step
        data = d.unconsumed_tail
        if not data and len(step) < 64:
            break
    assert not d.eof and not d.unused_data
    return bytes(out)


def test_window_check_can_fail():
    """inflate_fresh's window check must be able to fail: a stream made with
    a 2^15 window that refers 20,000 bytes back does not inflate with 2^9."""
    msg = far_repeats()
    body = deflate(msg, zlib.compressobj(9, zlib.DEFLATED, -15))
    assert inflate_fresh(body) == msg
    with pytest.raises(zlib.error, match="invalid distance too far back"):
        inflate_fresh(body, 9)
    for bits in (9, 12):
        assert inflate_fresh(deflate(msg, zlib.compressobj(9, zlib.DEFLATED, -bits)), bits) == msg


# ---------------------------------------------------------------- raw client

class Frame(NamedTuple):
    fin: bool
    rsv1: bool
    rsv2: bool
    rsv3: bool
    opcode: int
    payload: bytes


def mask_bytes(payload, key):
    n = len(payload)
    if n == 0:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def parse_answer(value):
    """The parameters of a permessage-deflate answer, checked: only those
    RFC 7692 defines, each at most once, a window of 9..15 bits."""
    parts = [p.strip() for p in value.split(";")]
    assert parts[0] == PMD, value
    params = {}
    for p in parts[1:]:
        name, eq, v = p.partition("=")
        assert name not in params, value
        if name in ("server_no_context_takeover", "client_no_context_takeover"):
            assert not eq, value
            params[name] = True
        elif name == "server_max_window_bits":
            assert v.isdigit() and 9 <= int(v) <= 15 and not v.startswith("0"), value
            params[name] = int(v)
        else:
            raise AssertionError(f"unexpected parameter {p!r} in {value!r}")
    return params


class RawClient:
    """A WebSocket client that does exactly what it is told, no more.

    `extensions`: None (no header), one Sec-WebSocket-Extensions value, or a
    list of values sent as that many header lines."""

    def __init__(self, port, extensions=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=SOCK_TIMEOUT)
        self.local_port = self.sock.getsockname()[1]  # kept: the socket closes at the EOF
        self.buf = bytearray()
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET / HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        if extensions is not None:
            for value in [extensions] if isinstance(extensions, str) else extensions:
                lines.append(f"Sec-WebSocket-Extensions: {value}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self.status, self.headers = self._read_response()
        if self.status == 101:
            accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
            assert self.headers.get("sec-websocket-accept") == [accept], self.headers

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()


    @property
    def extensions(self):
        """The response's Sec-WebSocket-Extensions value; None without one."""
        values = self.headers.get("sec-websocket-extensions")
        assert values is None or len(values) == 1, values
        return values[0] if values else None

    @property
    def window_bits(self):
        """The window the server's messages must inflate with (2^bits)."""
        answer = self.extensions
        return parse_answer(answer).get("server_max_window_bits", 15) if answer else 15

    @property
    def must_reset(self):
        """The answer asked this client for client_no_context_takeover."""
        answer = self.extensions
        return bool(answer) and parse_answer(answer).get("client_no_context_takeover", False)

    def _read_response(self):
        while b"\r\n\r\n" not in self.buf:
            assert len(self.buf) < 16384, "response head too long"
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError(f"connection closed during the handshake; got {bytes(self.buf)!r}")
            self.buf += chunk
        end = self.buf.index(b"\r\n\r\n")
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        del self.buf[:end + 4]
        version, status = head[0].split(" ")[:2]
        assert version == "HTTP/1.1", head[0]
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        return int(status), headers

    # -- sending

    def send_frame(self, opcode, payload, fin=True, rsv1=False, rsv2=False, rsv3=False, mask=True):
        b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | (0x20 if rsv2 else 0) | \
             (0x10 if rsv3 else 0) | opcode
        n = len(payload)
        m = 0x80 if mask else 0
        if n < 126:
            head = struct.pack("!BB", b0, m | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, m | 126, n)
        else:
            head = struct.pack("!BBQ", b0, m | 127, n)
        if mask:
            key = os.urandom(4)
            self.sock.sendall(head + key + mask_bytes(payload, key))
        else:
            self.sock.sendall(head + payload)

    def send_quietly(self, *frames):
        """Sends (opcode, payload, kwargs) frames; a server that already closed
        (it refused an earlier one) is not an error here."""
        try:
            for opcode, payload, kw in frames:
                self.send_frame(opcode, payload, **kw)
        except (BrokenPipeError, ConnectionResetError):
            pass

    # -- receiving

    def _read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise EOFError(f"connection closed with {len(self.buf)} of {n} bytes read")
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def recv_frame(self):
        b0, b1 = self._read_exact(2)
        assert not b1 & 0x80, "the server masked a frame"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read_exact(8))[0]
        return Frame(bool(b0 & 0x80), bool(b0 & 0x40), bool(b0 & 0x20), bool(b0 & 0x10),
                     b0 & 0x0F, self._read_exact(n))

    def recv_message(self):
        """The frames of the next data message (a close here fails the test)."""
        frames = []
        while True:
            f = self.recv_frame()
            if f.opcode == OP_CLOSE:
                raise AssertionError(f"close {parse_close(f.payload)} instead of a message")
            assert f.opcode == (OP_CONT if frames else f.opcode), f
            assert f.opcode in (OP_TEXT, OP_BINARY, OP_CONT), f
            assert not f.rsv2 and not f.rsv3, f
            frames.append(f)
            if f.fin:
                return frames

    def recv_data(self):
        """(opcode, data, compressed) of the next message, a compressed one
        inflated alone with the window this connection granted the server."""
        return message_data(self.recv_message(), self.window_bits)

    def expect_close(self, eof=True, answer=True, keep_open=False):
        """(code, reason) of the server's close frame, which must come next
        (no more data), followed by the end of the TCP connection (eof);
        keep_open: see expect_eof."""
        try:
            f = self.recv_frame()
        except (EOFError, ConnectionResetError) as e:
            raise AssertionError(f"the connection ended without a close frame ({e!r})") from None
        assert f.opcode == OP_CLOSE, f"expected a close frame, got {f}"
        assert f.fin and not (f.rsv1 or f.rsv2 or f.rsv3), f
        code, reason = parse_close(f.payload)
        # Answer as RFC 6455 asks; the server then ends the TCP connection.
        if answer:
            self.send_quietly((OP_CLOSE, f.payload[:2], {}))
        if eof:
            self.expect_eof(keep_open)
        return code, reason

    def expect_eof(self, keep_open=False):
        """The server ended the connection; this side closes too, as a real
        client does (the server waits for our FIN, up to its linger time,
        before it logs the close), unless keep_open (to send more)."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                raise AssertionError(f"data after the close: {chunk[:64]!r}")
        except ConnectionResetError:
            pass
        if not keep_open:
            self.sock.close()

    def sync(self):
        """Ping, then wait for the pong: the server has read all sent before."""
        self.send_frame(OP_PING, b"sync")
        f = self.recv_frame()
        assert (f.opcode, f.payload) == (OP_PONG, b"sync"), f

    def close_normally(self):
        self.send_frame(OP_CLOSE, struct.pack("!H", 1000))
        f = self.recv_frame()
        assert f.opcode == OP_CLOSE and parse_close(f.payload)[0] == 1000, f
        self.expect_eof()
        self.sock.close()


def parse_close(payload):
    if len(payload) < 2:
        return None, ""
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode()


def message_data(frames, bits=15):
    """(opcode, data, compressed) of a server message: RSV1 only ever on the
    first frame; a compressed one inflates with a fresh inflater whose window
    is 2^bits."""
    assert all(not f.rsv1 for f in frames[1:]), "RSV1 on a continuation frame"
    payload = b"".join(f.payload for f in frames)
    if frames[0].rsv1:
        return frames[0].opcode, inflate_fresh(payload, bits), True
    return frames[0].opcode, payload, False


def echo_frames(c, opcode, data):
    """Sends `data` as one plain frame; returns the frames of the echo."""
    c.send_frame(opcode, data)
    return c.recv_message()


def echo_raw(c, opcode, data, compress, co=None):
    """Sends one message (compressed: one RSV1 frame, with `co` when given,
    else a compressor of its own) and returns the echo's (opcode, data,
    compressed)."""
    c.send_frame(opcode, deflate(data, co) if compress else data, rsv1=compress)
    return c.recv_data()


def expected_answer(server):
    """What `server` answers a plain offer (permessage-deflate alone)."""
    if not server.compression_enabled:
        return None
    return ANSWER_KEEP if server.client_context else ANSWER


def assert_serves(server):
    """A new client gets a working echo from `server` (compressed where it
    offers permessage-deflate)."""
    enabled = server.compression_enabled
    with RawClient(server.port, PMD) as c:
        assert c.status == 101
        assert c.extensions == expected_answer(server)
        msg = compressible(1024)
        assert echo_raw(c, OP_TEXT, msg, enabled) == (OP_TEXT, msg, enabled)
        c.close_normally()


def close_event(server, client, **fields):
    """The server's close log event for the raw client `client`."""
    opened = server.wait_for_event("open", peer_port=client.local_port)
    return server.wait_for_event("close", conn=opened["conn"], **fields)


def assert_refused(server, c, code, reason, cause, event, message, answer=True):
    """The server refused what `c` sent: its close frame (code, reason)
    comes next and then the end of the connection; the close event and the
    warning event `event` (with `message`) say why."""
    assert c.expect_close(answer=answer) == (code, reason)
    ev = close_event(server, c, code=code)
    assert ev["cause"] == cause and ev["reason"] == reason, ev
    warned = server.wait_for_event(event, conn=ev["conn"])
    assert warned["message"] == message, warned


# ---------------------------------------------------------------- 1. negotiation

A, K = ANSWER, ANSWER_KEEP
OFFERS = [
    # (id, request Sec-WebSocket-Extensions (None: no header; a list: one
    #  header line each), answer by default, answer with
    #  compression.client_context_takeover=true); None: not negotiated.
    ("no-header", None, None, None),
    ("plain-offer", PMD, A, K),
    ("client-max-window-bits", "permessage-deflate; client_max_window_bits", A, K),
    ("client-max-window-bits-8", "permessage-deflate; client_max_window_bits=8", A, K),
    ("client-max-window-bits-15", "permessage-deflate; client_max_window_bits=15", A, K),
    ("client-max-window-bits-quoted", 'permessage-deflate; client_max_window_bits="10"', A, K),
    ("both-no-context-takeover", "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
     A, A),
    ("client-no-context-takeover", CNCT_OFFER, A, A),
    ("server-no-context-takeover", "permessage-deflate; server_no_context_takeover", A, K),
    ("both-no-context-takeover-client-order",
     "permessage-deflate; client_no_context_takeover; server_no_context_takeover", A, A),
    ("no-context-takeover-and-window", "permessage-deflate; client_no_context_takeover; client_max_window_bits=9",
     A, A),
    ("window-and-server-no-context-takeover",
     "permessage-deflate; client_max_window_bits=10; server_no_context_takeover", A, K),
    ("odd-spacing", "  permessage-deflate ;client_no_context_takeover", A, A),
    # server_max_window_bits: 9..15 granted (15 is the default: nothing to
    # echo); 8 declined, as zlib cannot make an 8-bit window.
    ("server-max-window-bits-9", "permessage-deflate; server_max_window_bits=9", windowed(A, 9), windowed(K, 9)),
    ("server-max-window-bits-10", "permessage-deflate; server_max_window_bits=10", windowed(A, 10),
     windowed(K, 10)),
    ("server-max-window-bits-14", "permessage-deflate; server_max_window_bits=14", windowed(A, 14),
     windowed(K, 14)),
    ("server-max-window-bits-15", "permessage-deflate; server_max_window_bits=15", A, K),
    ("server-max-window-bits-quoted", 'permessage-deflate; server_max_window_bits="12"', windowed(A, 12),
     windowed(K, 12)),
    ("server-max-window-bits-8", "permessage-deflate; server_max_window_bits=8", None, None),
    ("server-max-window-bits-no-value", "permessage-deflate; server_max_window_bits", None, None),
    ("server-max-window-bits-16", "permessage-deflate; server_max_window_bits=16", None, None),
    ("server-max-window-bits-repeated", "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
     None, None),
    ("every-parameter", "permessage-deflate; client_no_context_takeover; server_no_context_takeover; "
                        "client_max_window_bits=12; server_max_window_bits=11", windowed(A, 11), windowed(A, 11)),
    # Several offers: the first the server can honour, in the client's order.
    ("window-offer-first", "permessage-deflate; server_max_window_bits=10, " + CNCT_OFFER,
     windowed(A, 10), windowed(K, 10)),
    ("reset-offer-first", CNCT_OFFER + ", permessage-deflate; server_max_window_bits=10", A, A),
    ("declined-then-accepted", "permessage-deflate; server_max_window_bits=8, " + CNCT_OFFER, A, A),
    ("paramless-then-offer", "permessage-deflate, " + CNCT_OFFER, A, K),
    ("paramless-twice", "permessage-deflate, permessage-deflate", A, K),
    ("unknown-then-declined-then-window",
     "x-foo, permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=13, "
     "permessage-deflate", windowed(A, 13), windowed(K, 13)),
    ("unknown-param-then-window", "permessage-deflate; foo, permessage-deflate; server_max_window_bits=14",
     windowed(A, 14), windowed(K, 14)),
    ("unknown-param", "permessage-deflate; foo", None, None),
    ("unknown-param-with-value", "permessage-deflate; foo=1", None, None),
    ("window-bits-7", "permessage-deflate; client_max_window_bits=7", None, None),
    ("window-bits-16", "permessage-deflate; client_max_window_bits=16", None, None),
    ("window-bits-08", "permessage-deflate; client_max_window_bits=08", None, None),
    ("window-bits-empty", "permessage-deflate; client_max_window_bits=", None, None),
    ("repeated-param", "permessage-deflate; client_no_context_takeover; client_no_context_takeover", None, None),
    ("value-on-no-context-takeover", "permessage-deflate; server_no_context_takeover=1", None, None),
    ("trailing-semicolon", "permessage-deflate;", None, None),
    ("webkit-only", "x-webkit-deflate-frame", None, None),
    ("webkit-then-pmd", "x-webkit-deflate-frame, permessage-deflate", A, K),
    # Tabs are whitespace too (RFC 7230 OWS).
    ("tab", "permessage-deflate;\tclient_no_context_takeover", A, A),
    ("tabs-everywhere", "permessage-deflate\t;\tserver_max_window_bits=11\t;\tclient_max_window_bits\t",
     windowed(A, 11), windowed(K, 11)),
    ("tab-in-other-extension", "x-foo;\ta=1,\tpermessage-deflate", A, K),
    ("quoted-comma", 'permessage-deflate; client_max_window_bits="1,0"', None, None),
    # Repeated header lines read as one list (RFC 7230 3.2.2).
    ("two-header-lines", ["x-foo; a=1", "permessage-deflate; server_max_window_bits=11"],
     windowed(A, 11), windowed(K, 11)),
    ("two-header-lines-declined-first", ["permessage-deflate; foo", "permessage-deflate"], A, K),
]

NEGOTIATION = [pytest.param((ENABLED,), offer, default, id=f"default-{name}")
               for name, offer, default, _ in OFFERS]
NEGOTIATION += [pytest.param((ENABLED, CLIENT_CONTEXT), offer, keep, id=f"client-context-{name}")
                for name, offer, _, keep in OFFERS]
NEGOTIATION += [pytest.param(sets, offer, None, id=f"disabled-{name}{suffix}")
                for sets, suffix in (((), ""), ((CLIENT_CONTEXT,), "-client-context"))
                for name, offer in (("plain-offer", PMD), ("client-no-context-takeover", CNCT_OFFER),
                                    ("server-max-window-bits", "permessage-deflate; server_max_window_bits=10"))]


@pytest.mark.parametrize("sets,offer,answer", NEGOTIATION)
def test_negotiation(start_echo, sets, offer, answer):
    server = start_echo(*sets)
    negotiated = answer is not None
    with RawClient(server.port, offer) as c:
        assert c.status == 101
        assert c.extensions == answer
        opened = server.wait_for_event("open", peer_port=c.local_port)
        assert opened.get("compression") == (PMD if negotiated else None), opened
        msg = compressible(1024)
        # Compressed both ways where negotiated, plain both ways otherwise;
        # what the server sends inflates alone, with the window it was granted.
        assert echo_raw(c, OP_TEXT, msg, negotiated) == (OP_TEXT, msg, negotiated)
        if negotiated:
            # An uncompressed message is fine too (RSV1 clear).
            assert echo_raw(c, OP_BINARY, b"plain", False) == (OP_BINARY, b"plain", False)
            # Where the answer lets the client keep its context, it does: the
            # second message is little more than a reference to the first.
            co = None if c.must_reset else zlib.compressobj(6, zlib.DEFLATED, -15)
            base = hex_text(600)
            for i in range(2):
                m = base + str(i).encode()
                assert echo_raw(c, OP_TEXT, m, True, co) == (OP_TEXT, m, True)
            far = far_repeats()
            assert echo_raw(c, OP_BINARY, far, True) == (OP_BINARY, far, True)
        c.close_normally()
    assert_serves(server)


# ---------------------------------------------------------------- 2. header length

def extensions_value(n, offer_first):
    """A Sec-WebSocket-Extensions value of n bytes: the offer, then (or
    after) another extension padded to length."""
    offer = CNCT_OFFER
    pad = "x-padding; v="
    value = pad + "p" * (n - len(pad) - len(offer) - 2)
    value = f"{offer}, {value}" if offer_first else f"{value}, {offer}"
    assert len(value) == n
    return value


@pytest.mark.parametrize("sets", [(ENABLED,), (ENABLED, CLIENT_CONTEXT), ()],
                         ids=["enabled", "client-context", "disabled"])
def test_extensions_header_length(start_echo, sets):
    """The offer is read from a value of any length the request's header
    limit allows (MAX_HEADER_BYTES for all header lines), wherever in it the
    offer stands; past that limit the whole request gets 431."""
    server = start_echo(*sets)
    enabled = server.compression_enabled
    for n in (254, 255, 256, 600, 4000, MAX_HEADER_BYTES - 1000):
        for offer_first in (True, False):
            with RawClient(server.port, extensions_value(n, offer_first)) as c:
                assert c.status == 101, (n, c.headers)
                assert c.extensions == (ANSWER if enabled else None), n
                msg = compressible(1024)
                assert echo_raw(c, OP_TEXT, msg, enabled) == (OP_TEXT, msg, enabled)
                c.close_normally()
    with RawClient(server.port, extensions_value(MAX_HEADER_BYTES + 100, True)) as c:
        assert c.status == 431, c.headers
        assert "sec-websocket-accept" not in c.headers
        rejected = server.wait_for_event("reject", peer_port=c.local_port)
        assert rejected["status"] == 431, rejected
    assert_serves(server)


# ---------------------------------------------------------------- 3. websockets client

WS_CLIENTS = {
    # name: (server settings besides ENABLED, connect kwargs, response Sec-WebSocket-Extensions or None)
    "default-offer": ((), {}, ANSWER),
    "client-no-context-takeover": (
        (), {"extensions": [ClientPerMessageDeflateFactory(client_no_context_takeover=True)]}, ANSWER),
    "server-no-context-takeover": (
        (), {"extensions": [ClientPerMessageDeflateFactory(server_no_context_takeover=True)]}, ANSWER),
    "server-max-window-bits-10": (
        (), {"extensions": [ClientPerMessageDeflateFactory(server_max_window_bits=10)]}, windowed(ANSWER, 10)),
    "server-max-window-bits-8": (
        (), {"extensions": [ClientPerMessageDeflateFactory(server_max_window_bits=8)]}, None),
    "client-context-default-offer": ((CLIENT_CONTEXT,), {}, ANSWER_KEEP),
    "client-context-client-no-context-takeover": (
        (CLIENT_CONTEXT,), {"extensions": [ClientPerMessageDeflateFactory(client_no_context_takeover=True)]},
        ANSWER),
    "client-context-server-max-window-bits-9": (
        (CLIENT_CONTEXT,), {"extensions": [ClientPerMessageDeflateFactory(server_max_window_bits=9)]},
        windowed(ANSWER_KEEP, 9)),
}

SIZES = [0, 1, 127, 128, 129, 4096, 70 * 1024, LIMIT - 1]


def run(coro, timeout=30.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def ws_connect(url, **kw):
    kw.setdefault("open_timeout", SOCK_TIMEOUT)
    kw.setdefault("close_timeout", SOCK_TIMEOUT)
    kw.setdefault("ping_interval", None)
    kw.setdefault("max_size", None)
    return websockets.connect(url, **kw)


def start_for(start_echo, client):
    sets, kwargs, answer = WS_CLIENTS[client]
    return start_echo(ENABLED, *sets), kwargs, answer


def assert_ws_agreement(ws, answer):
    """The websockets client heard the answer as the server meant it: it
    resets its compressor per message where asked, and inflates with the
    window it granted."""
    assert ws.response_headers.get("Sec-WebSocket-Extensions") == answer
    assert [e.name for e in ws.extensions] == ([PMD] if answer else [])
    if answer:
        params = parse_answer(answer)
        pmd = ws.extensions[0]
        assert pmd.remote_no_context_takeover  # the server resets its own
        assert pmd.local_no_context_takeover == params.get("client_no_context_takeover", False)
        assert pmd.remote_max_window_bits == params.get("server_max_window_bits", 15)


def watch_rsv1(ws):
    """Records (opcode, rsv1) of each data frame the server sends, as it
    arrives and before websockets inflates it."""
    seen = []
    if not ws.extensions:
        return seen
    pmd = ws.extensions[0]
    decode = pmd.decode

    def recording(frame, *, max_size=None):
        if frame.opcode.value in (OP_TEXT, OP_BINARY, OP_CONT):
            seen.append((frame.opcode.value, frame.rsv1))
        return decode(frame, max_size=max_size)
    pmd.decode = recording
    return seen


def ws_messages():
    msgs = []
    for n in SIZES:
        msgs.append(compressible_text(n))
        msgs.append(compressible(n))
    msgs += [os.urandom(4096), os.urandom(70 * 1024), os.urandom(LIMIT - 1)]
    return msgs


@pytest.mark.parametrize("client", list(WS_CLIENTS))
def test_websockets_round_trips(start_echo, client):
    server, kwargs, answer = start_for(start_echo, client)
    bits = parse_answer(answer).get("server_max_window_bits", 15) if answer else 15
    msgs = ws_messages()

    async def body():
        async with ws_connect(server.url, **kwargs) as ws:
            assert_ws_agreement(ws, answer)
            seen = watch_rsv1(ws)
            for m in msgs:
                del seen[:]
                await ws.send(m)
                got = await asyncio.wait_for(ws.recv(), SOCK_TIMEOUT)
                assert type(got) is type(m) and len(got) == len(m) and got == m
                if answer:
                    # The server compresses what is long enough and shrinks.
                    size = len(m.encode() if isinstance(m, str) else m)
                    shrinks = size >= MIN_BYTES and deflated_size(
                        m.encode() if isinstance(m, str) else m, 1, bits) < size
                    assert seen and seen[0][1] == shrinks, (size, seen[:3])
                    assert all(not rsv1 for _, rsv1 in seen[1:])
    run(body(), timeout=60)
    opened = [e for e in server.stderr_events() if e.get("event") == "open"]
    assert len(opened) == 1 and opened[0].get("compression") == (PMD if answer else None), opened


@pytest.mark.parametrize("client", list(WS_CLIENTS))
def test_websockets_similar_messages_in_a_row(start_echo, client):
    """Pipelined similar messages: with client context takeover each one
    refers back to the ones before, so every message must arrive intact."""
    server, kwargs, answer = start_for(start_echo, client)
    msgs = [f'{{"seq":{i},"user":"alice","room":"lobby","text":"{compressible_text(200 + i)}"}}'
            for i in range(100)]

    async def body():
        async with ws_connect(server.url, **kwargs) as ws:
            assert_ws_agreement(ws, answer)
            for m in msgs:
                await ws.send(m)
            got = [await asyncio.wait_for(ws.recv(), SOCK_TIMEOUT) for _ in msgs]
            assert got == msgs
    run(body())
    assert_serves(server)


@pytest.mark.parametrize("client", ["default-offer", "client-no-context-takeover", "client-context-default-offer"])
def test_websockets_fragmented_sends(start_echo, client):
    server, kwargs, answer = start_for(start_echo, client)
    text_parts = ["fragment-one ", "", "\u00e9\u2603 ", compressible_text(70000), " end"]
    binary_parts = [os.urandom(100), b"", compressible(65536), os.urandom(3)]

    async def binary_fragments():
        for p in binary_parts:
            yield p
            await asyncio.sleep(0)

    async def body():
        async with ws_connect(server.url, **kwargs) as ws:
            assert_ws_agreement(ws, answer)
            for _ in range(2):  # the second time over a warm compression context
                await ws.send(text_parts)
                assert await asyncio.wait_for(ws.recv(), SOCK_TIMEOUT) == "".join(text_parts)
                await ws.send(binary_fragments())
                assert await asyncio.wait_for(ws.recv(), SOCK_TIMEOUT) == b"".join(binary_parts)
            await ws.send("after")
            assert await asyncio.wait_for(ws.recv(), SOCK_TIMEOUT) == "after"
    run(body())


# ---------------------------------------------------------------- 4. server output

def test_server_output_compression(start_echo):
    server = start_echo(ENABLED)
    with RawClient(server.port, PMD) as c:
        assert c.extensions == ANSWER
        msg = compressible(1024)
        # Sent twice: the second must inflate with a fresh inflater too (no
        # context taken over from the first).
        for _ in range(2):
            frames = echo_frames(c, OP_TEXT, msg)
            assert len(frames) == 1 and frames[0].rsv1
            assert len(frames[0].payload) < len(msg) // 4
            assert message_data(frames) == (OP_TEXT, msg, True)
        # Below min_bytes: plain; at it: compressed.
        for n, compressed in ((100, False), (MIN_BYTES - 1, False), (MIN_BYTES, True)):
            assert echo_raw(c, OP_BINARY, compressible(n), False) == (OP_BINARY, compressible(n), compressed)
        # Incompressible: sent as it is.
        noise = os.urandom(1024)
        frames = echo_frames(c, OP_BINARY, noise)
        assert [(f.rsv1, f.payload) for f in frames] == [(False, noise)]
        # A compressed inbound message does not make the answer compressed
        # when it is short.
        assert echo_raw(c, OP_TEXT, b"short", True) == (OP_TEXT, b"short", False)
        c.close_normally()
    assert_serves(server)


def test_server_output_min_bytes_0(start_echo):
    server = start_echo(ENABLED, "compression.min_bytes=0")
    with RawClient(server.port, PMD) as c:
        assert c.extensions == ANSWER
        shrinks = b"a" * 20
        grows = b"abcdefghijklmnopqrst"
        assert deflated_size(shrinks, 1) < 20 <= deflated_size(grows, 1)
        assert echo_raw(c, OP_TEXT, shrinks, False) == (OP_TEXT, shrinks, True)
        assert echo_raw(c, OP_TEXT, grows, False) == (OP_TEXT, grows, False)
        # Empty and one-byte messages cannot shrink.
        assert echo_raw(c, OP_BINARY, b"", False) == (OP_BINARY, b"", False)
        assert echo_raw(c, OP_BINARY, b"x", True) == (OP_BINARY, b"x", False)
        c.close_normally()
    assert_serves(server)


@pytest.mark.parametrize("level", [1, 9])
@pytest.mark.parametrize("bits", [15, 9])
def test_server_output_fragments(start_echo, level, bits):
    """A message whose compressed form passes the write batch goes out in
    fragments: RSV1 on the first only, all of them inflating as one, within
    the window the client granted."""
    server = start_echo(ENABLED, f"compression.level={level}")
    msg = hex_text(200 * 1024)
    assert deflated_size(msg, level, bits) > WRITE_BATCH  # else there is nothing to fragment
    offer = PMD if bits == 15 else f"permessage-deflate; server_max_window_bits={bits}"
    with RawClient(server.port, offer) as c:
        assert c.extensions == (ANSWER if bits == 15 else windowed(ANSWER, bits))
        for opcode in (OP_TEXT, OP_BINARY):
            frames = echo_frames(c, opcode, msg)
            assert len(frames) >= 2
            assert [f.rsv1 for f in frames] == [True] + [False] * (len(frames) - 1)
            assert [f.opcode for f in frames] == [opcode] + [OP_CONT] * (len(frames) - 1)
            assert all(len(f.payload) <= WRITE_BATCH for f in frames)
            assert sum(len(f.payload) for f in frames) < len(msg)
            assert message_data(frames, bits) == (opcode, msg, True)
        c.close_normally()
    assert_serves(server)


@pytest.mark.parametrize("level", [1, 9])
def test_server_output_window(start_echo, level):
    """server_max_window_bits is honoured: what the server sends inflates
    with the window granted, in small output steps (inflate_fresh), though
    the message repeats itself farther back than that window reaches."""
    server = start_echo(ENABLED, f"compression.level={level}")
    msg = far_repeats()
    # Without the parameter the server uses its whole window, and the
    # 2^9 check fails on its output: the check below can fail.
    with RawClient(server.port, PMD) as c:
        assert c.extensions == ANSWER and c.window_bits == 15
        frames = echo_frames(c, OP_BINARY, msg)
        assert frames[0].rsv1
        assert message_data(frames, 15) == (OP_BINARY, msg, True)
        with pytest.raises(zlib.error, match="invalid distance too far back"):
            message_data(frames, 9)
        c.close_normally()
    for bits in range(9, 16):
        with RawClient(server.port, f"permessage-deflate; server_max_window_bits={bits}") as c:
            assert c.extensions == (windowed(ANSWER, bits) if bits < 15 else ANSWER)
            for _ in range(2):  # the server's compressor for this window, reused
                frames = echo_frames(c, OP_BINARY, msg)
                assert frames[0].rsv1 and sum(len(f.payload) for f in frames) < len(msg)
                assert message_data(frames, bits) == (OP_BINARY, msg, True)
            c.close_normally()
    assert_serves(server)


def test_server_output_windows_side_by_side(start_echo):
    """Connections granted different windows, open at once and served in
    turn, each get output that fits their own."""
    server = start_echo(ENABLED)
    msg = far_repeats()
    clients = [RawClient(server.port, f"permessage-deflate; server_max_window_bits={bits}")
               for bits in (9, 15, 10, 9)]
    try:
        for _ in range(2):
            for c in clients:
                c.send_frame(OP_BINARY, msg)
            for c in clients:
                assert c.recv_data() == (OP_BINARY, msg, True), c.extensions
        for c in clients:
            c.close_normally()
    finally:
        for c in clients:
            c.sock.close()
    assert_serves(server)


# ---------------------------------------------------------------- 5. inbound

def test_inbound_context_takeover(start_echo):
    """One compressor for 20 messages: later messages are back-references
    into earlier ones, which only a server that keeps its window decodes
    (compression.client_context_takeover=true, the client did not offer
    client_no_context_takeover)."""
    server = start_echo(ENABLED, CLIENT_CONTEXT)
    base = hex_text(1000)
    with RawClient(server.port, "permessage-deflate; client_max_window_bits") as c:
        assert c.extensions == ANSWER_KEEP
        co = zlib.compressobj(6, zlib.DEFLATED, -15)
        for i in range(20):
            msg = base + str(i).encode()
            body = deflate(msg, co)
            if i:
                assert len(body) < 40  # a back-reference, meaningless without the window
            c.send_frame(OP_TEXT, body, rsv1=True)
            assert c.recv_data() == (OP_TEXT, msg, True)
        c.close_normally()
    assert_serves(server)


@pytest.mark.parametrize("sets,offer", [
    pytest.param((), PMD, id="default"),
    pytest.param((), "permessage-deflate; client_max_window_bits", id="default-window-offer"),
    pytest.param((CLIENT_CONTEXT,), CNCT_OFFER, id="client-context-but-offered"),
])
@pytest.mark.parametrize("fragmented", [False, True], ids=["one-frame", "fragments"])
def test_inbound_client_no_context_takeover_is_held(start_echo, sets, offer, fragmented):
    """Where the answer carries client_no_context_takeover the server
    inflates each message on its own: a client that keeps its context anyway
    sends a back-reference the server cannot resolve, and is refused (1007)."""
    server = start_echo(ENABLED, *sets)
    base = hex_text(1000)
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    with RawClient(server.port, offer) as c:
        assert c.extensions == ANSWER
        assert echo_raw(c, OP_TEXT, base, True, co) == (OP_TEXT, base, True)
        body = deflate(base, co)
        assert len(body) < 40  # only a reference into the message before
        if fragmented:
            c.send_quietly((OP_TEXT, body[:3], {"fin": False, "rsv1": True}), (OP_CONT, body[3:], {}))
        else:
            c.send_quietly((OP_TEXT, body, {"rsv1": True}))
        assert c.expect_close() == (1007, "invalid compressed data")
        ev = close_event(server, c, code=1007)
        assert ev["cause"] == "bad_compression", ev
        bad = server.wait_for_event("bad_compression", conn=ev["conn"])
        assert bad["message"].startswith("permessage-deflate data refused: "), bad
    assert_serves(server)


@pytest.mark.parametrize("sets", [(), (CLIENT_CONTEXT,)], ids=["default", "client-context"])
def test_inbound_client_no_context_takeover(start_echo, sets):
    server = start_echo(ENABLED, *sets)
    with RawClient(server.port, CNCT_OFFER) as c:
        assert c.extensions == ANSWER
        for i in range(20):
            msg = hex_text(500) + str(i).encode()
            assert echo_raw(c, OP_TEXT, msg, True) == (OP_TEXT, msg, True)
            # Between them an uncompressed one.
            assert echo_raw(c, OP_BINARY, b"plain %d" % i, False) == (OP_BINARY, b"plain %d" % i, False)
        c.close_normally()
    assert_serves(server)


@pytest.mark.parametrize("sets,offer,answer", [
    pytest.param((), PMD, ANSWER, id="default"),
    pytest.param((CLIENT_CONTEXT,), PMD, ANSWER_KEEP, id="client-context"),
    pytest.param((CLIENT_CONTEXT,), CNCT_OFFER, ANSWER, id="client-context-reset-offered"),
])
def test_inbound_fragmented(start_echo, sets, offer, answer):
    """One compressed message in several frames, RSV1 on the first only,
    with empty continuations in the middle and at the end, and a ping
    between two of them (answered at once, the message still whole)."""
    server = start_echo(ENABLED, *sets)
    msg = ("\u00e9t\u00e9 \u2603 " * 300).encode() + hex_text(3000)
    body = deflate(msg)
    assert len(body) > 100
    with RawClient(server.port, offer) as c:
        assert c.status == 101 and c.extensions == answer
        for cuts in ([1, 1, 50], [len(body) // 2], [0, 0, len(body)]):
            pieces, start = [], 0
            for cut in cuts:
                pieces.append(body[start:start + cut])
                start += cut
            pieces.append(body[start:])
            pieces.insert(2, b"")  # an empty continuation in the middle
            pieces.append(b"")     # and an empty final one
            for i, piece in enumerate(pieces):
                last = i == len(pieces) - 1
                c.send_frame(OP_TEXT if i == 0 else OP_CONT, piece, fin=last, rsv1=i == 0)
                if i == 1:
                    c.send_frame(OP_PING, b"between")
            f = c.recv_frame()
            assert (f.opcode, f.rsv1, f.payload) == (OP_PONG, False, b"between"), f
            assert c.recv_data() == (OP_TEXT, msg, True)
        c.close_normally()
    assert_serves(server)


@pytest.mark.parametrize("size", [4000, 100 * 1024, LIMIT - 1])
def test_inbound_large_single_frame(start_echo, size):
    """One compressed frame of a few KiB up to nearly the limit: the larger
    ones span many of the server's reads (64 KiB at most each)."""
    server = start_echo(ENABLED)
    msg = hex_text(size)
    body = deflate(msg)
    assert len(body) > 2048
    with RawClient(server.port, PMD) as c:
        assert c.extensions == ANSWER
        c.send_frame(OP_TEXT, body, rsv1=True)
        assert c.recv_data() == (OP_TEXT, msg, True)
        c.close_normally()
    assert_serves(server)


CONTEXT_POLICIES = pytest.mark.parametrize("sets", [(), (CLIENT_CONTEXT,)], ids=["default", "client-context"])


def message_compressor(c, shared):
    """The compressor for the next message: `shared` where the client may
    keep its context, a fresh one where it was asked not to."""
    return zlib.compressobj(6, zlib.DEFLATED, -15) if c.must_reset else shared


@CONTEXT_POLICIES
def test_inbound_bfinal(start_echo, sets):
    """A client may end its DEFLATE stream (Z_FINISH, BFINAL); the next
    message starts a new stream."""
    server = start_echo(ENABLED, *sets)
    with RawClient(server.port, PMD) as c:
        assert c.extensions == expected_answer(server)
        for i in range(3):
            msg = compressible(1000) + str(i).encode()
            co = zlib.compressobj(6, zlib.DEFLATED, -15)
            c.send_frame(OP_TEXT, co.compress(msg) + co.flush(zlib.Z_FINISH), rsv1=True)
            assert c.recv_data() == (OP_TEXT, msg, True)
            # Then a usual message with a compressor of its own that keeps
            # its context for one more message where the answer allows.
            co = zlib.compressobj(6, zlib.DEFLATED, -15)
            for j in range(2):
                msg = hex_text(300) + str(j).encode()
                assert echo_raw(c, OP_BINARY, msg, True, message_compressor(c, co)) == (OP_BINARY, msg, True)
            # BFINAL in an empty stored block after the sync flush.
            msg = compressible(300)
            co = zlib.compressobj(6, zlib.DEFLATED, -15)
            c.send_frame(OP_TEXT, co.compress(msg) + co.flush(zlib.Z_SYNC_FLUSH) + co.flush(zlib.Z_FINISH),
                         rsv1=True)
            assert c.recv_data() == (OP_TEXT, msg, True)
        c.close_normally()
    assert_serves(server)


@CONTEXT_POLICIES
def test_inbound_empty_compressed_messages(start_echo, sets):
    """Empty messages compressed (RFC 7692 7.2.3.6), in a context-keeping
    stream where the answer allows one, each followed by a message that
    must still decode."""
    server = start_echo(ENABLED, *sets)
    shared = zlib.compressobj(6, zlib.DEFLATED, -15)
    with RawClient(server.port, PMD) as c:
        assert c.extensions == expected_answer(server)
        for body in (b"\x00", b"\x02\x00", None):  # stored, fixed Huffman, the compressor's own
            if body is None:
                body = deflate(b"", message_compressor(c, shared))
            c.send_frame(OP_TEXT, body, rsv1=True)
            assert c.recv_data() == (OP_TEXT, b"", False)
            msg = compressible(300)
            assert echo_raw(c, OP_TEXT, msg, True, message_compressor(c, shared)) == (OP_TEXT, msg, True)
        c.close_normally()
    assert_serves(server)


# ---------------------------------------------------------------- 6. bombs

def zeros_deflated(total, co, flush=zlib.Z_SYNC_FLUSH):
    chunk = bytes(1024 * 1024)
    out = []
    left = total
    while left:
        n = min(left, len(chunk))
        out.append(co.compress(chunk[:n]))
        left -= n
    out.append(co.flush(flush))
    return b"".join(out)


def bomb_server(start_echo, *sets):
    server = start_echo(ENABLED, f"limits.max_message_bytes={LIMIT}", *sets)
    assert_serves(server)  # warm: the baseline includes one compressed round trip
    return server, peak_rss_kib(server)


def assert_bomb_refused(server, c, frames, baseline_kib):
    t0 = time.monotonic()
    c.send_quietly(*frames)
    try:
        seen = c.expect_close()
    except AssertionError as e:
        seen = str(e)
    elapsed = time.monotonic() - t0
    # What the server did first, then what the client saw.
    ev = close_event(server, c, code=1009)
    assert ev["cause"] == "too_big" and ev["reason"] == "message too big", ev
    server.wait_for_event("too_big", conn=ev["conn"], limit=LIMIT)
    assert elapsed < 3.0, f"refused after {elapsed:.2f} s"
    peak = peak_rss_kib(server)
    # Inflating the whole 64 MiB would show; the limit's 1 MiB (and zlib's
    # window) must not. Under ASan only the growth says something.
    assert peak - baseline_kib < 24 * 1024, (baseline_kib, peak)
    if not sanitized(server):
        assert peak < 64 * 1024, (baseline_kib, peak)
    assert seen == (1009, "message too big")


def test_bomb_one_frame(start_echo):
    server, baseline = bomb_server(start_echo)
    body = zeros_deflated(64 * LIMIT, zlib.compressobj(9, zlib.DEFLATED, -15))
    assert body.endswith(TAIL) and len(body) < 128 * 1024
    with RawClient(server.port, PMD) as c:
        assert c.extensions == ANSWER
        assert_bomb_refused(server, c, [(OP_BINARY, body[:-4], {"rsv1": True})], baseline)
    assert_serves(server)


# (server settings besides ENABLED, offer, answer): the shared inflater, and
# a connection's own inflater that keeps its window.
BOMB_OFFERS = pytest.mark.parametrize("sets,offer,answer", [
    pytest.param((), PMD, ANSWER, id="default"),
    pytest.param((), CNCT_OFFER, ANSWER, id="default-reset-offered"),
    pytest.param((CLIENT_CONTEXT,), PMD, ANSWER_KEEP, id="client-context"),
    pytest.param((CLIENT_CONTEXT,), CNCT_OFFER, ANSWER, id="client-context-reset-offered"),
])


@BOMB_OFFERS
def test_bomb_fragments(start_echo, sets, offer, answer):
    """64 fragments of 1 MiB inflated each, back to back as an attacker
    sends them."""
    server, baseline = bomb_server(start_echo, *sets)
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    pieces = [zeros_deflated(LIMIT, co) for _ in range(64)]
    frames = [(OP_TEXT if i == 0 else OP_CONT, p, {"fin": i == len(pieces) - 1, "rsv1": i == 0})
              for i, p in enumerate(pieces)]
    with RawClient(server.port, offer) as c:
        assert c.extensions == answer
        assert_bomb_refused(server, c, frames, baseline)
    assert_serves(server)


@BOMB_OFFERS
def test_limit_across_fragments(start_echo, sets, offer, answer):
    """The inflated bytes of all fragments count: the first fills the limit
    exactly (taken in: the pong proves it), one more byte refuses."""
    server = start_echo(ENABLED, f"limits.max_message_bytes={LIMIT}", *sets)
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    with RawClient(server.port, offer) as c:
        assert c.extensions == answer
        c.send_frame(OP_BINARY, zeros_deflated(LIMIT, co), fin=False, rsv1=True)
        c.sync()
        c.send_frame(OP_CONT, deflate(b"\0", co), fin=True)
        assert c.expect_close() == (1009, "message too big")
        assert close_event(server, c, code=1009)["cause"] == "too_big"
    assert_serves(server)


def test_refusal_close_frame_with_more_data_buffered(start_echo):
    """The refused fragment is followed by more than the server reads at
    once (64 KiB): the client must still get the close frame with the
    reason, not only the end of the TCP connection (what a fast bomb looks
    like)."""
    server = start_echo(ENABLED, f"limits.max_message_bytes={LIMIT}")
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    with RawClient(server.port, PMD) as c:
        c.send_frame(OP_BINARY, zeros_deflated(LIMIT, co), fin=False, rsv1=True)
        c.sync()
        # Frames of 1044 bytes in one write, 3 x 64 KiB in all.
        over = zeros_deflated(LIMIT, co)
        after = [zeros_deflated(LIMIT, co) for _ in range(3 * 64)]
        assert len(over) == len(after[0]) == 1036
        raw = b""
        for i, payload in enumerate([over] + after):
            key = os.urandom(4)
            fin = i == len(after)
            raw += struct.pack("!BBH", (0x80 if fin else 0), 0x80 | 126, len(payload)) + key + \
                mask_bytes(payload, key)
        assert len(raw) > 3 * 64 * 1024
        try:
            c.sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused before it read it all
        try:
            seen = c.expect_close()
        except AssertionError as e:
            seen = str(e)
        assert close_event(server, c, code=1009)["cause"] == "too_big"
        assert seen == (1009, "message too big")
    assert_serves(server)


def test_bomb_across_messages_with_context(start_echo):
    """Each message stays under the limit though the shared window keeps
    growing the stream: all must be echoed, none refused."""
    server = start_echo(ENABLED, f"limits.max_message_bytes={LIMIT}", CLIENT_CONTEXT)
    with RawClient(server.port, PMD) as c:
        assert c.extensions == ANSWER_KEEP
        co = zlib.compressobj(9, zlib.DEFLATED, -15)
        for _ in range(8):
            body = zeros_deflated(LIMIT, co)
            c.send_frame(OP_BINARY, body[:-4], rsv1=True)
            assert c.recv_data() == (OP_BINARY, bytes(LIMIT), True)
        c.close_normally()
    assert_serves(server)


@pytest.mark.parametrize("size,refused", [(LIMIT, False), (LIMIT + 1, True)])
def test_limit_counts_inflated_bytes(start_echo, size, refused):
    server = start_echo(ENABLED, f"limits.max_message_bytes={LIMIT}")
    body = zeros_deflated(size, zlib.compressobj(9, zlib.DEFLATED, -15))[:-4]
    assert len(body) < 4096
    with RawClient(server.port, PMD) as c:
        c.send_frame(OP_BINARY, body, rsv1=True)
        if refused:
            assert c.expect_close() == (1009, "message too big")
            assert close_event(server, c, code=1009)["cause"] == "too_big"
        else:
            assert c.recv_data() == (OP_BINARY, bytes(size), True)
            c.close_normally()
    assert_serves(server)


# ---------------------------------------------------------------- 7. bad input

def _backref_only():
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    first = hex_text(2000)
    deflate(first, co)
    second = deflate(first, co)
    assert len(second) < 40
    return second


BACKREF_ONLY = _backref_only()

@pytest.mark.parametrize("body", [
    pytest.param(b"\xff\xff\xff\xff\xff", id="reserved-block-type"),
    pytest.param(b"\x00\x05\x00\x00\x00hello", id="stored-length-mismatch"),
    # A back-reference into a window this connection never had.
    pytest.param(BACKREF_ONLY, id="distance-too-far-back"),
    # No compressed byte at all (an empty message compresses to 0x00).
    pytest.param(b"", id="empty-payload"),
])
@pytest.mark.parametrize("fragmented", [False, True], ids=["one-frame", "fragments"])
def test_corrupt_deflate(start_echo, body, fragmented):
    """Data no inflater can read, in one frame (the shared inflater) or in
    two (the connection's own, freed with the message)."""
    server = start_echo(ENABLED)
    with RawClient(server.port, PMD) as c:
        assert c.extensions == ANSWER
        if fragmented:
            c.send_quietly((OP_TEXT, body[:2], {"fin": False, "rsv1": True}), (OP_CONT, body[2:], {}))
        else:
            c.send_quietly((OP_TEXT, body, {"rsv1": True}))
        assert c.expect_close() == (1007, "invalid compressed data")
        ev = close_event(server, c, code=1007)
        assert ev["cause"] == "bad_compression" and ev["reason"] == "invalid compressed data", ev
        bad = server.wait_for_event("bad_compression", conn=ev["conn"])
        assert bad["message"].startswith("permessage-deflate data refused: "), bad
    assert_serves(server)


@CONTEXT_POLICIES
def test_corrupt_after_good_messages(start_echo, sets):
    """Corruption in the third message (of a context-keeping stream where
    the answer allows one)."""
    server = start_echo(ENABLED, *sets)
    with RawClient(server.port, PMD) as c:
        assert c.extensions == expected_answer(server)
        shared = zlib.compressobj(6, zlib.DEFLATED, -15)
        for _ in range(2):
            msg = compressible(500)
            assert echo_raw(c, OP_TEXT, msg, True, message_compressor(c, shared)) == (OP_TEXT, msg, True)
        c.send_quietly((OP_TEXT, b"\xff\xff\xff\xff\xff", {"rsv1": True}))
        assert c.expect_close() == (1007, "invalid compressed data")
        assert close_event(server, c, code=1007)["cause"] == "bad_compression"
    assert_serves(server)


@pytest.mark.parametrize("first_compressed", [True, False], ids=["compressed", "plain"])
def test_rsv1_on_continuation(start_echo, first_compressed):
    """RFC 7692 section 6: RSV1 on a non-first fragment fails the connection,
    whether or not the message's first frame had it."""
    server = start_echo(ENABLED)
    body = deflate(compressible(1000))
    with RawClient(server.port, PMD) as c:
        assert c.extensions == ANSWER
        first = body[:20] if first_compressed else b"plain start "
        rest = body[20:] if first_compressed else b"plain end"
        c.send_quietly((OP_TEXT, first, {"fin": False, "rsv1": first_compressed}),
                       (OP_CONT, rest, {"fin": True, "rsv1": True}))
        assert_refused(server, c, 1007, "invalid compressed data", "bad_compression", "bad_compression",
                       "permessage-deflate data refused: RSV1 on a continuation frame")
    assert_serves(server)


@pytest.mark.parametrize("opcode,payload", [(OP_PING, b"hi"), (OP_PONG, b"hi"),
                                            (OP_CLOSE, struct.pack("!H", 1000))],
                         ids=["ping", "pong", "close"])
def test_rsv1_on_control_frame(start_echo, opcode, payload):
    """RFC 7692 section 6: RSV1 on a control frame fails the connection
    (1007, as for any bad compressed data). A ping so marked gets no pong:
    the close frame comes next."""
    server = start_echo(ENABLED)
    with RawClient(server.port, PMD) as c:
        assert c.extensions == ANSWER
        c.send_quietly((opcode, payload, {"rsv1": True}))
        assert_refused(server, c, 1007, "invalid compressed data", "bad_compression", "bad_compression",
                       "permessage-deflate data refused: RSV1 on a control frame")
    assert_serves(server)


NOT_NEGOTIATED = "RSV1 set but permessage-deflate was not negotiated"


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_PING], ids=["text", "ping"])
@pytest.mark.parametrize("sets,offer", [
    pytest.param((ENABLED,), None, id="enabled-not-offered"),
    pytest.param((ENABLED,), "permessage-deflate; server_max_window_bits=8", id="enabled-offer-declined"),
    pytest.param((), PMD, id="disabled"),
])
def test_rsv1_without_negotiation(start_echo, sets, offer, opcode):
    """RFC 6455 5.2: a reserved bit no extension gave a meaning fails the
    connection with 1002."""
    server = start_echo(*sets)
    with RawClient(server.port, offer) as c:
        assert c.status == 101 and c.extensions is None
        payload = deflate(compressible(300)) if opcode == OP_TEXT else b"hi"
        c.send_quietly((opcode, payload, {"rsv1": True}))
        assert_refused(server, c, 1002, NOT_NEGOTIATED, "protocol_error", "protocol_error", NOT_NEGOTIATED)
    assert_serves(server)


@pytest.mark.parametrize("bits", [{"rsv2": True}, {"rsv3": True}], ids=["rsv2", "rsv3"])
def test_rsv2_rsv3_with_negotiation(start_echo, bits):
    server = start_echo(ENABLED)
    with RawClient(server.port, PMD) as c:
        assert c.extensions == ANSWER
        c.send_quietly((OP_TEXT, deflate(compressible(300)), dict(rsv1=True, **bits)))
        reason = "reserved bits RSV2/RSV3 set"
        assert_refused(server, c, 1002, reason, "protocol_error", "protocol_error", reason)
    assert_serves(server)


@pytest.mark.parametrize("frame,reason", [
    pytest.param((OP_TEXT, b"x", {"rsv1": True, "mask": False}), "client frame not masked", id="unmasked"),
    pytest.param((0x3, b"x", {"rsv1": True}), "reserved opcode", id="reserved-opcode"),
    pytest.param((OP_CLOSE, struct.pack("!H", 1005), {}), "close code not allowed on the wire",
                 id="close-code-1005"),
])
def test_protocol_errors_on_a_compressed_connection(start_echo, frame, reason):
    """What RFC 6455 forbids is refused with 1002 on a compressed connection
    too, before RSV1 is looked at."""
    server = start_echo(ENABLED)
    with RawClient(server.port, PMD) as c:
        assert c.extensions == ANSWER
        c.send_quietly(frame)
        assert_refused(server, c, 1002, reason, "protocol_error", "protocol_error", reason)
    assert_serves(server)


# Refusals of three kinds: (offer, frame, close code, reason, log event).
REFUSALS = {
    "bad-compression": (PMD, (OP_TEXT, b"\xff\xff\xff\xff\xff", {"rsv1": True}),
                        1007, "invalid compressed data", "bad_compression"),
    "rsv1-not-negotiated": (None, (OP_TEXT, b"x", {"rsv1": True}), 1002, NOT_NEGOTIATED, "protocol_error"),
    "too-big": (PMD, (OP_BINARY, zeros_deflated(LIMIT + 1, zlib.compressobj(9, zlib.DEFLATED, -15))[:-4],
                      {"rsv1": True}), 1009, "message too big", "too_big"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusal_does_not_wait_for_the_client(start_echo, case):
    """After refusing, the server sends its close frame and ends its side of
    the TCP connection at once, long before close_wait, whether or not the
    client ever answers."""
    server = start_echo(ENABLED, "heartbeat.close_wait_ms=10000", f"limits.max_message_bytes={LIMIT}")
    offer, frame, code, reason, _ = REFUSALS[case]
    with RawClient(server.port, offer) as c:
        t0 = time.monotonic()
        c.send_quietly(frame)
        assert c.expect_close(answer=False, keep_open=True) == (code, reason)
        elapsed = time.monotonic() - t0
        assert elapsed < 2.0, f"the server's side ended {elapsed:.2f} s after the refusal"
        # The client answers late and ends its side: the connection ends
        # then, with the refusal's code, not at close_wait.
        c.send_quietly((OP_CLOSE, struct.pack("!H", code), {}))
        c.sock.shutdown(socket.SHUT_WR)
        ev = close_event(server, c, code=code)
        assert ev["reason"] == reason and ev["duration_ms"] < 5000, ev
    assert_serves(server)


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusal_is_logged_once(start_echo, case):
    """One refusal, one warning: what the refused client sends afterwards
    (a ping, data, its close, each in a read of its own) is not logged
    again."""
    server = start_echo(ENABLED, f"limits.max_message_bytes={LIMIT}")
    offer, frame, code, reason, event = REFUSALS[case]
    with RawClient(server.port, offer) as c:
        c.send_quietly(frame)
        assert c.expect_close(eof=False, answer=False) == (code, reason)
        for later in ((OP_PING, b"late", {}), (OP_TEXT, b"late", {}), (OP_CLOSE, struct.pack("!H", code), {})):
            time.sleep(0.05)
            c.send_quietly(later)
        c.expect_eof(keep_open=True)
        c.sock.shutdown(socket.SHUT_WR)
        ev = close_event(server, c, code=code)
    warnings = [e for e in server.stderr_events() if e.get("level") == "warn" and e.get("conn") == ev["conn"]]
    assert [e.get("event") for e in warnings] == [event], warnings
    assert_serves(server)


@pytest.mark.parametrize("data", [
    pytest.param(b"caf\xc3", id="truncated-sequence"),
    pytest.param(b"ok \xff\xfe ok" * 50, id="invalid-bytes"),
    pytest.param(b"\xed\xa0\x80 surrogate", id="surrogate"),
])
def test_compressed_invalid_utf8(start_echo, data):
    server = start_echo(ENABLED)
    with RawClient(server.port, PMD) as c:
        c.send_quietly((OP_TEXT, deflate(data), {"rsv1": True}))
        assert c.expect_close() == (1007, "invalid UTF-8")
        assert close_event(server, c, code=1007)["cause"] == "invalid_utf8"
    assert_serves(server)


def test_compressed_utf8_split_across_fragments(start_echo):
    """Valid UTF-8 whose characters straddle frame (and inflate) boundaries."""
    server = start_echo(ENABLED)
    msg = ("\u2603\u00e9\U0001f600" * 400).encode()
    body = deflate(msg)
    with RawClient(server.port, PMD) as c:
        pieces = [body[i:i + 7] for i in range(0, len(body), 7)]
        for i, piece in enumerate(pieces):
            c.send_frame(OP_TEXT if i == 0 else OP_CONT, piece, fin=i == len(pieces) - 1, rsv1=i == 0)
        assert c.recv_data() == (OP_TEXT, msg, True)
        c.close_normally()
    assert_serves(server)


# ---------------------------------------------------------------- 8. log

def test_open_event_names_compression_only_when_negotiated(start_echo):
    server = start_echo(ENABLED)
    ports = {}
    for offer, negotiated in ((PMD, True), (None, False), ("permessage-deflate; server_max_window_bits=8", False),
                              ("permessage-deflate; server_max_window_bits=9", True),
                              ("permessage-deflate; client_no_context_takeover", True)):
        with RawClient(server.port, offer) as c:
            assert c.status == 101
            ports[c.local_port] = negotiated
            c.close_normally()

    async def body():
        async with ws_connect(server.url) as ws:
            ports[ws.local_address[1]] = True
            await ws.send("x")
            assert await ws.recv() == "x"
        async with ws_connect(server.url, compression=None) as ws:
            ports[ws.local_address[1]] = False
            await ws.send("y")
            assert await ws.recv() == "y"
    run(body())
    for port, negotiated in ports.items():
        ev = server.wait_for_event("open", peer_port=port)
        assert ev.get("compression") == (PMD if negotiated else None), ev
        server.wait_for_event("close", conn=ev["conn"], code=1000)
    assert len([e for e in server.stderr_events() if e.get("event") == "open"]) == len(ports)
    code, _ = server.signal_and_wait()
    assert code == 0
    server.assert_no_sanitizer_reports()
