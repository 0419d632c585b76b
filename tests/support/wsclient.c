/* wsclient.c - minimal WebSocket client for the wsgate tests. See wsclient.h. */
#if !defined(_GNU_SOURCE) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE /* getaddrinfo, strncasecmp, getrandom under -std=c99 */
#endif
#include "wsclient.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#define HEAD_MAX      16384          /* max HTTP response head */
#define IO_TIMEOUT_MS 10000          /* bound for every write */
#define MAX_PAYLOAD   (256u << 20)   /* refuse absurd frame lengths instead of malloc'ing them */
#define INIT_CAP      16384
#define MIN_TAIL      4096           /* min free space offered to each recv() */

struct wsc {
    int fd;
    unsigned char *buf;              /* unparsed input is buf[off..len) */
    size_t off, len, cap;
    int eof;                         /* EOF or socket error seen */
    int desync;                      /* protocol error: stream no longer parseable */
    int auto_pong, pings, close_sent;
    unsigned char *msg;              /* fragmented message being reassembled */
    size_t msg_len;
    int msg_op;                      /* its opcode, 0 if none in progress */
};

/* ---------------------------------------------------------------- utilities */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t deadline_in(int ms) { return now_ms() + (ms > 0 ? ms : 0); }

static void rand_bytes(void *p, size_t n)
{
    unsigned char *b = p;
    while (n > 0) {
        ssize_t r = getrandom(b, n, 0);
        if (r > 0) { b += r; n -= (size_t)r; }
        else if (errno != EINTR) break;
    }
    if (n > 0) { /* no getrandom(): weak fallback is acceptable for a test client */
        uint64_t x = (uint64_t)now_ms() ^ (uint64_t)(uintptr_t)p;
        while (n--) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            *b++ = (unsigned char)(x >> 56);
        }
    }
}

/* Wait for `ev` on fd until the deadline: 1 ready (incl. HUP/ERR), 0 timeout, -1 error. */
static int wait_io(int fd, short ev, int64_t dl)
{
    for (;;) {
        int64_t rem = dl - now_ms();
        struct pollfd p = { fd, ev, 0 };
        int r = poll(&p, 1, rem < 0 ? 0 : rem > INT_MAX ? INT_MAX : (int)rem);
        if (r > 0) return 1;
        if (r == 0) return 0;
        if (errno != EINTR) return -1;
    }
}

/* MSG_DONTWAIT makes every call non-blocking whatever the fd mode is, and
 * MSG_NOSIGNAL turns a write to a closed peer into EPIPE instead of SIGPIPE. */
static int send_all(int fd, const void *data, size_t len, int64_t dl)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) { p += n; len -= (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return -1;
        if (wait_io(fd, POLLOUT, dl) != 1) return -1;
    }
    return 0;
}

/* >0 bytes, 0 EOF, -1 error, -2 timeout. Tries recv first so a zero timeout
 * still returns data that is already queued. */
static long recv_some(int fd, void *buf, size_t cap, int64_t dl)
{
    for (;;) {
        ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);
        if (n >= 0) return (long)n;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
        int w = wait_io(fd, POLLIN, dl);
        if (w == 0) return -2;
        if (w < 0) return -1;
    }
}

static int drain_until_eof(int fd, int64_t dl)
{
    char tmp[4096];
    for (;;) {
        long n = recv_some(fd, tmp, sizeof tmp, dl);
        if (n == -2) return 0;
        if (n <= 0) return 1;
    }
}

static int tcp_open(const char *host, int port, int64_t dl)
{
    struct addrinfo hints, *ai = NULL;
    char ps[16];
    int fd, err = 0, one = 1;
    socklen_t el = sizeof err;

    if (!host) return -1;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    snprintf(ps, sizeof ps, "%d", port);
    if (getaddrinfo(host, ps, &hints, &ai) != 0) return -1;
    /* Non-blocking connect so the timeout also covers the TCP handshake. */
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS || wait_io(fd, POLLOUT, dl) != 1 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd >= 0) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        /* Back to blocking for raw users; our own I/O uses MSG_DONTWAIT. */
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    }
    return fd;
}

/* --------------------------------------------------------------- handshake */

/* Length of the head including "\r\n\r\n", or 0 if not complete yet. */
static size_t head_end(const void *buf, size_t len)
{
    const unsigned char *b = buf;
    for (size_t i = 0; i + 4 <= len; i++)
        if (b[i] == '\r' && b[i + 1] == '\n' && b[i + 2] == '\r' && b[i + 3] == '\n')
            return i + 4;
    return 0;
}

static int parse_status(const char *h, size_t n)
{
    if (n < 12 || memcmp(h, "HTTP/1.", 7) != 0 || h[8] != ' ') return 0;
    for (int i = 9; i < 12; i++)
        if (h[i] < '0' || h[i] > '9') return 0;
    return (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
}

/* Value of header `name` in a NUL-terminated head, trimmed; NULL if absent. */
static const char *find_header(const char *head, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = strstr(head, "\r\n");
    while (p && p[2] && p[2] != '\r') {
        const char *line = p + 2, *eol = strstr(line, "\r\n");
        if (!eol) break;
        if ((size_t)(eol - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1, *e = eol;
            while (v < e && (*v == ' ' || *v == '\t')) v++;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
            *vlen = (size_t)(e - v);
            return v;
        }
        p = eol;
    }
    return NULL;
}

/* Does the comma-separated list v[0..n) contain tok (case-insensitive)? */
static int has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok), i = 0;
    while (v && i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
        size_t s = i, e;
        while (i < n && v[i] != ',') i++;
        for (e = i; e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'); e--) {}
        if (e - s == tl && strncasecmp(v + s, tok, tl) == 0) return 1;
    }
    return 0;
}

static int check_upgrade_headers(const char *head, const char *want_accept)
{
    size_t n = 0;
    const char *v = find_header(head, "Upgrade", &n);
    if (!has_token(v, n, "websocket")) return 0;
    v = find_header(head, "Connection", &n);
    if (!has_token(v, n, "upgrade")) return 0;
    v = find_header(head, "Sec-WebSocket-Accept", &n);
    return v && n == strlen(want_accept) && memcmp(v, want_accept, n) == 0;
}

wsc *wsc_from_fd(int fd)
{
    wsc *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->fd = fd;
    c->auto_pong = 1;
    return c;
}

/* Read more input into c->buf: >0 bytes, 0 EOF, -1 error, -2 timeout. */
static int fill(wsc *c, int64_t dl)
{
    if (c->cap - c->len < MIN_TAIL) {
        if (c->off > 0) { /* reclaim consumed space before growing */
            memmove(c->buf, c->buf + c->off, c->len - c->off);
            c->len -= c->off;
            c->off = 0;
        }
        if (c->cap - c->len < MIN_TAIL) {
            size_t nc = c->cap ? c->cap * 2 : INIT_CAP;
            unsigned char *nb = realloc(c->buf, nc);
            if (!nb) { c->eof = 1; return -1; }
            c->buf = nb;
            c->cap = nc;
        }
    }
    long n = recv_some(c->fd, c->buf + c->len, c->cap - c->len, dl);
    if (n > 0) c->len += (size_t)n;
    else if (n == 0 || n == -1) c->eof = 1;
    return (int)n;
}

wsc *wsc_connect_ex(const char *host, int port, const char *path, const char *extra_headers,
                    int timeout_ms, int *status_out, char **response_out)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"; /* RFC 6455 constant */
    int64_t dl = deadline_in(timeout_ms);
    unsigned char raw[16], digest[EVP_MAX_MD_SIZE];
    char key[32], want[64], cat[128], *req = NULL, *head;
    unsigned int dlen = 0;
    size_t hl = 0;
    wsc *c = NULL;
    int fd, n, st, ok;

    if (status_out) *status_out = 0;
    if (response_out) *response_out = NULL;
    if ((fd = tcp_open(host, port, dl)) < 0) return NULL;
    if (!(c = wsc_from_fd(fd))) { close(fd); return NULL; }

    rand_bytes(raw, sizeof raw);
    EVP_EncodeBlock((unsigned char *)key, raw, sizeof raw);
    n = snprintf(cat, sizeof cat, "%s%s", key, guid);
    if (!EVP_Digest(cat, (size_t)n, digest, &dlen, EVP_sha1(), NULL)) goto fail;
    EVP_EncodeBlock((unsigned char *)want, digest, (int)dlen);

    /* IPv6 literals need brackets in the Host header. */
    const char *fmt = "GET %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                      "Sec-WebSocket-Version: 13\r\n%s\r\n";
    const char *lb = strchr(host, ':') ? "[" : "", *rb = *lb ? "]" : "";
    if (!path) path = "/";
    if (!extra_headers) extra_headers = "";
    n = snprintf(NULL, 0, fmt, path, lb, host, rb, port, key, extra_headers);
    if (n < 0 || !(req = malloc((size_t)n + 1))) goto fail;
    snprintf(req, (size_t)n + 1, fmt, path, lb, host, rb, port, key, extra_headers);
    if (send_all(fd, req, (size_t)n, dl) != 0) goto fail;

    /* Read until the blank line; anything after it is already frame data. */
    while (!(hl = head_end(c->buf, c->len < HEAD_MAX ? c->len : HEAD_MAX)))
        if (c->len >= HEAD_MAX || fill(c, dl) <= 0) goto fail;

    if (!(head = malloc(hl + 1))) goto fail;
    memcpy(head, c->buf, hl);
    head[hl] = '\0';
    c->off = hl;
    st = parse_status(head, hl);
    if (status_out) *status_out = st;
    ok = st == 101 && check_upgrade_headers(head, want);
    if (response_out) *response_out = head;
    else free(head);
    if (!ok) goto fail;
    free(req);
    return c;
fail:
    free(req);
    wsc_free(c);
    return NULL;
}

wsc *wsc_connect(const char *host, int port, const char *path, const char *extra_headers,
                 int timeout_ms, int *status_out)
{
    return wsc_connect_ex(host, port, path, extra_headers, timeout_ms, status_out, NULL);
}

int wsc_tcp_connect(const char *host, int port, int timeout_ms)
{
    return tcp_open(host, port, deadline_in(timeout_ms));
}

int wsc_fd(wsc *c) { return c ? c->fd : -1; }
void wsc_set_auto_pong(wsc *c, int on) { c->auto_pong = on; }
int wsc_pings_seen(wsc *c) { return c->pings; }

/* ------------------------------------------------------------------ sending */

/* Header + (optionally masked) payload in one buffer, so a frame goes out in
 * as few segments as possible. mask == NULL means unmasked. */
static unsigned char *encode(int opcode, int fin, const void *data, size_t len,
                             const unsigned char *mask, size_t *out_len)
{
    const unsigned char *d = data;
    unsigned char mbit = mask ? 0x80 : 0, *f;
    size_t h = 0;

    if (len > SIZE_MAX - 14 || !(f = malloc(len + 14))) return NULL;
    f[h++] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0x7f));
    if (len < 126) {
        f[h++] = mbit | (unsigned char)len;
    } else if (len <= 0xffff) {
        f[h++] = mbit | 126;
        f[h++] = (unsigned char)(len >> 8);
        f[h++] = (unsigned char)len;
    } else {
        f[h++] = mbit | 127;
        for (int i = 7; i >= 0; i--) f[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    if (mask) {
        memcpy(f + h, mask, 4);
        h += 4;
        for (size_t i = 0; i < len; i++) f[h + i] = d[i] ^ mask[i & 3];
    } else if (len) {
        memcpy(f + h, d, len);
    }
    *out_len = h + len;
    return f;
}

unsigned char *wsc_build_frame(int opcode, int fin, const void *data, size_t len, int masked,
                               size_t *out_len)
{
    unsigned char mask[4];
    rand_bytes(mask, sizeof mask);
    return encode(opcode, fin, data, len, masked ? mask : NULL, out_len);
}

static int send_frame(wsc *c, int opcode, int fin, const void *data, size_t len, int masked)
{
    size_t n;
    unsigned char *f = wsc_build_frame(opcode, fin, data, len, masked, &n);
    if (!f) return -1;
    int r = send_all(c->fd, f, n, deadline_in(IO_TIMEOUT_MS));
    free(f);
    return r;
}

int wsc_send_frame(wsc *c, int opcode, int fin, const void *data, size_t len)
{
    return send_frame(c, opcode, fin, data, len, 1);
}

int wsc_send_frame_unmasked(wsc *c, int opcode, int fin, const void *data, size_t len)
{
    return send_frame(c, opcode, fin, data, len, 0);
}

int wsc_send_text(wsc *c, const char *s) { return wsc_send_frame(c, 1, 1, s, strlen(s)); }

int wsc_send_binary(wsc *c, const void *data, size_t len)
{
    return wsc_send_frame(c, 2, 1, data, len);
}

int wsc_send_close(wsc *c, int code, const char *reason)
{
    size_t rl = (code >= 0 && reason) ? strlen(reason) : 0, n = 0;
    unsigned char *p = malloc(rl + 2);
    if (!p) return -1;
    if (code >= 0) {
        p[0] = (unsigned char)(code >> 8);
        p[1] = (unsigned char)code;
        if (rl) memcpy(p + 2, reason, rl);
        n = rl + 2;
    }
    c->close_sent = 1;
    int r = wsc_send_frame(c, 8, 1, p, n);
    free(p);
    return r;
}

int wsc_send_raw(wsc *c, const void *data, size_t len)
{
    return send_all(c->fd, data, len, deadline_in(IO_TIMEOUT_MS));
}

/* ---------------------------------------------------------------- receiving */

/* Parse one frame from the buffer: 1 done, 0 need more bytes, -1 protocol error. */
static int parse_frame(wsc *c, wsc_frame *out)
{
    const unsigned char *p = c->buf + c->off;
    size_t avail = c->len - c->off, h = 2;
    uint64_t plen;

    if (avail < 2) return 0;
    int fin = p[0] >> 7, op = p[0] & 0x0f;
    if ((p[0] & 0x70) || (p[1] & 0x80)) return -1; /* RSV bits (no extensions) or masked */
    plen = p[1] & 0x7f;
    if (plen == 126) {
        if (avail < 4) return 0;
        plen = (uint64_t)p[2] << 8 | p[3];
        h = 4;
    } else if (plen == 127) {
        if (avail < 10) return 0;
        plen = 0;
        for (int i = 0; i < 8; i++) plen = plen << 8 | p[2 + i];
        h = 10;
    }
    if (plen > MAX_PAYLOAD) return -1;
    if (op >= 8 && (plen > 125 || !fin)) return -1; /* control frames: short, unfragmented */
    if (avail - h < plen) return 0;

    unsigned char *d = malloc((size_t)plen + 1);
    if (!d) return -1;
    memcpy(d, p + h, (size_t)plen);
    d[plen] = '\0';
    out->opcode = op;
    out->fin = fin;
    out->data = d;
    out->len = (size_t)plen;
    out->close_code = op != 8 ? 0 : plen >= 2 ? (d[0] << 8 | d[1]) : 1005;
    c->off += h + (size_t)plen;
    if (c->off == c->len) c->off = c->len = 0;
    return 1;
}

/* Next frame with auto-pong applied: 1 frame, 0 timeout, -1 EOF/socket error,
 * -3 protocol error (the stream is then marked desynced and input dropped). */
static int recv_one(wsc *c, wsc_frame *out, int64_t dl)
{
    memset(out, 0, sizeof *out);
    if (c->desync) return -3;
    for (;;) {
        int r = parse_frame(c, out);
        if (r < 0) {
            c->desync = 1;
            c->off = c->len = 0;
            return -3;
        }
        if (r == 0) {
            if (c->eof) return -1;
            if (fill(c, dl) == -2) return 0;
            continue;
        }
        if (out->opcode == 9) {
            c->pings++;
            if (c->auto_pong) {
                send_frame(c, 10, 1, out->data, out->len, 1); /* failure shows up as EOF later */
                wsc_frame_free(out);
                continue;
            }
        }
        return 1;
    }
}

int wsc_recv_frame(wsc *c, wsc_frame *out, int timeout_ms)
{
    int r = recv_one(c, out, deadline_in(timeout_ms));
    return r == -3 ? -1 : r;
}

int wsc_recv_message(wsc *c, wsc_frame *out, int timeout_ms)
{
    int64_t dl = deadline_in(timeout_ms);
    wsc_frame f;

    memset(out, 0, sizeof *out);
    for (;;) {
        int r = recv_one(c, &f, dl);
        if (r <= 0) return r == -3 ? -1 : r;
        if (f.opcode >= 8 || (c->msg_op == 0 && f.opcode != 0 && f.fin)) {
            *out = f; /* control frame or unfragmented message */
            return 1;
        }
        /* Continuation without a start, or a new data frame inside a message. */
        if ((f.opcode == 0) != (c->msg_op != 0)) {
            wsc_frame_free(&f);
            free(c->msg);
            c->msg = NULL;
            c->msg_len = 0;
            c->msg_op = 0;
            return -1;
        }
        unsigned char *nm = realloc(c->msg, c->msg_len + f.len + 1);
        if (!nm) { wsc_frame_free(&f); return -1; }
        memcpy(nm + c->msg_len, f.data, f.len);
        c->msg = nm;
        c->msg_len += f.len;
        if (!c->msg_op) c->msg_op = f.opcode;
        int fin = f.fin;
        wsc_frame_free(&f);
        if (fin) {
            out->opcode = c->msg_op;
            out->fin = 1;
            out->data = c->msg;
            out->data[c->msg_len] = '\0';
            out->len = c->msg_len;
            c->msg = NULL;
            c->msg_len = 0;
            c->msg_op = 0;
            return 1;
        }
    }
}

void wsc_frame_free(wsc_frame *f)
{
    if (!f) return;
    free(f->data);
    memset(f, 0, sizeof *f);
}

/* ----------------------------------------------------------------- closing */

int wsc_wait_closed(wsc *c, int timeout_ms, int reply_close, int *close_code)
{
    int64_t dl = deadline_in(timeout_ms);
    wsc_frame f;

    if (close_code) *close_code = 1006;
    for (;;) {
        if (c->desync) return drain_until_eof(c->fd, dl); /* can't parse: just wait for EOF */
        int r = recv_one(c, &f, dl);
        if (r == 0) return 0;
        if (r == -1) return 1;
        if (r == -3) continue;
        if (f.opcode == 8) {
            if (close_code) *close_code = f.close_code;
            if (reply_close && !c->close_sent) /* 1005 must not be sent on the wire */
                wsc_send_close(c, f.close_code == 1005 ? -1 : f.close_code, NULL);
        }
        wsc_frame_free(&f);
    }
}

void wsc_free(wsc *c)
{
    if (!c) return;
    if (c->fd >= 0) close(c->fd);
    free(c->buf);
    free(c->msg);
    free(c);
}

void wsc_abort(wsc *c)
{
    if (!c) return;
    struct linger l = { 1, 0 }; /* close() then sends RST instead of FIN */
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    wsc_free(c);
}

int wsc_close(wsc *c, int code, int timeout_ms)
{
    int cc = 1006;
    if (!c) return -1;
    if (!c->close_sent) wsc_send_close(c, code, NULL);
    wsc_wait_closed(c, timeout_ms, 0, &cc);
    wsc_free(c);
    return cc == 1006 ? -1 : cc;
}

/* ---------------------------------------------------------- raw fd helpers */

int wsc_fd_send_all(int fd, const void *data, size_t len, int timeout_ms)
{
    return send_all(fd, data, len, deadline_in(timeout_ms));
}

long wsc_fd_recv(int fd, void *buf, size_t cap, int timeout_ms)
{
    return recv_some(fd, buf, cap, deadline_in(timeout_ms));
}

int wsc_fd_read_response(int fd, int timeout_ms, char **response_out)
{
    int64_t dl = deadline_in(timeout_ms);
    char *b = malloc(HEAD_MAX + 1);
    size_t len = 0, hl;
    int st;

    if (response_out) *response_out = NULL;
    if (!b) return 0;
    while (!(hl = head_end(b, len)) && len < HEAD_MAX) {
        long n = recv_some(fd, b + len, HEAD_MAX - len, dl);
        if (n <= 0) break;
        len += (size_t)n;
    }
    if (!hl) hl = len; /* incomplete: report what arrived */
    b[hl] = '\0';
    st = parse_status(b, hl);
    if (response_out) *response_out = b;
    else free(b);
    return st;
}

int wsc_fd_wait_closed(int fd, int timeout_ms)
{
    return drain_until_eof(fd, deadline_in(timeout_ms));
}
