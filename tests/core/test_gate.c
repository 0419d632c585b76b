/* The gate's handshake matrix (issue 16, item 1): every upgrade request that
 * RFC 6455 4.2.1 / RFC 7230 make invalid, sent raw over TCP to a loopback
 * server, must get a complete HTTP/1.1 refusal with the right status and
 * headers, then the end of the connection, and exactly one "reject" log
 * event naming the status, a reason and the peer. The head limits are
 * options: at the limit a request passes, one byte past it does not. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "wsclient.h"

#define HOST "127.0.0.1"

#define HOSTH "Host: 127.0.0.1\r\n"
#define UPG "Upgrade: websocket\r\n"
#define CONN "Connection: Upgrade\r\n"
#define KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define VER "Sec-WebSocket-Version: 13\r\n"
#define GOOD HOSTH UPG CONN KEY VER

/* A server whose log sink keeps every event at warn and above: a refusal
 * must add exactly one, its "reject". */
typedef struct gsrv {
    wsg_server *srv;
    int port;
    pthread_mutex_t mu;
    char events[256][512]; /* guarded by mu */
    int nevents;
} gsrv;

static void on_log(wsg_server *s, wsg_log_level level, const char *event, const char *json, size_t len,
                   void *user) {
    (void)s;
    (void)level;
    (void)event;
    gsrv *g = user;
    pthread_mutex_lock(&g->mu);
    if (g->nevents < 256) {
        size_t n = len < 511 ? len : 511;
        memcpy(g->events[g->nevents], json, n);
        g->events[g->nevents][n] = 0;
    }
    g->nevents++;
    pthread_mutex_unlock(&g->mu);
}

static gsrv *gsrv_start(const char *const *settings) {
    gsrv *g = calloc(1, sizeof *g);
    assert_non_null(g);
    pthread_mutex_init(&g->mu, NULL);
    wsg_config *cfg;
    assert_int_equal(wsg_config_new(&cfg), WSG_OK);
    assert_int_equal(wsg_config_set_from_string(cfg, "listen.host=127.0.0.1"), WSG_OK);
    assert_int_equal(wsg_config_set_from_string(cfg, "listen.port=0"), WSG_OK);
    assert_int_equal(wsg_config_set_from_string(cfg, "log.level=warn"), WSG_OK);
    /* Each refusal's own reject event is checked: no flood limit here
     * (test_log checks the limit). */
    assert_int_equal(wsg_config_set_from_string(cfg, "log.max_per_s=0"), WSG_OK);
    for (int i = 0; settings && settings[i]; i++)
        if (wsg_config_set_from_string(cfg, settings[i]) != WSG_OK) fail_msg("%s", wsg_last_error());
    assert_int_equal(wsg_server_new(&g->srv, cfg), WSG_OK);
    wsg_config_free(cfg);
    assert_int_equal(wsg_server_on_log(g->srv, on_log, g, NULL), WSG_OK);
    assert_int_equal(wsg_server_start(g->srv), WSG_OK);
    assert_int_equal(wsg_server_port(g->srv, &g->port), WSG_OK);
    return g;
}

static void gsrv_free(gsrv *g) {
    wsg_server_free(g->srv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

static int gsrv_events(gsrv *g) {
    pthread_mutex_lock(&g->mu);
    int n = g->nevents;
    pthread_mutex_unlock(&g->mu);
    return n;
}

/* A copy of event i ("" if not kept). */
static void gsrv_event(gsrv *g, int i, char *out, size_t cap) {
    pthread_mutex_lock(&g->mu);
    snprintf(out, cap, "%s", i < 256 ? g->events[i] : "");
    pthread_mutex_unlock(&g->mu);
}

/* What came back for one request: everything the server sent until it
 * ended the connection. */
typedef struct answer {
    int status;
    char head[4096]; /* lower-cased */
    char body[512];
    int closed; /* the server ended the connection (EOF or reset) within the wait */
} answer;

static void lower(char *s) {
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z') *s = (char)(*s - 'A' + 'a');
}

static void copy_text(char *out, size_t cap, const char *in, size_t n) {
    if (n >= cap) n = cap - 1;
    memcpy(out, in, n);
    out[n] = 0;
}

/* Sends `req` (a send cut short by the server's close is fine: it may
 * refuse before the request ends) and reads until the server closes. */
static answer send_raw(int port, const char *req, size_t len) {
    answer a;
    memset(&a, 0, sizeof a);
    int fd = wsc_tcp_connect(HOST, port, 3000);
    assert_true(fd >= 0);
    wsc_fd_send_all(fd, req, len, 3000);
    static char buf[65536];
    size_t got = 0;
    int64_t deadline = tu_now_ms() + 5000;
    while (tu_now_ms() < deadline) {
        long r = wsc_fd_recv(fd, buf + got, sizeof buf - 1 - got, 200);
        if (r == 0 || r == -1) {
            a.closed = 1;
            break;
        }
        if (r > 0) got += (size_t)r;
        if (got == sizeof buf - 1) break;
    }
    close(fd);
    buf[got] = 0;
    const char *end = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/1.1 %d ", &a.status) != 1) a.status = 0;
    size_t hl = end ? (size_t)(end - buf) + 4 : got;
    copy_text(a.head, sizeof a.head, buf, hl);
    if (end) copy_text(a.body, sizeof a.body, end + 4, got - hl);
    lower(a.head);
    return a;
}

typedef struct hcase {
    const char *name;
    const char *req;
    size_t len; /* 0: strlen(req) */
    int status;
    const char *header; /* a header line the answer must hold (lower case), or NULL */
} hcase;

/* Checks one refusal: the answer, the close and its single reject event. */
static void expect_refusal(gsrv *g, const hcase *c) {
    const int before = gsrv_events(g);
    answer a = send_raw(g->port, c->req, c->len ? c->len : strlen(c->req));
    if (a.status != c->status)
        fail_msg("%s: status %d, expected %d (answer: %.200s)", c->name, a.status, c->status, a.head);
    char line[32];
    snprintf(line, sizeof line, "http/1.1 %d ", c->status);
    if (strncmp(a.head, line, strlen(line)) != 0) fail_msg("%s: status line %.40s", c->name, a.head);
    if (!strstr(a.head, "\r\nconnection: close\r\n") && !strstr(a.head, "\r\nconnection: upgrade, close\r\n"))
        fail_msg("%s: no connection: close in %s", c->name, a.head);
    if (c->header && !strstr(a.head, c->header)) fail_msg("%s: no \"%s\" in %s", c->name, c->header, a.head);
    /* A body that says why, as long as content-length says. */
    const char *cl = strstr(a.head, "content-length: ");
    if (!cl) fail_msg("%s: no content-length", c->name);
    if ((size_t)atoi(cl + 16) != strlen(a.body) || strlen(a.body) < 8)
        fail_msg("%s: body \"%s\" against %s", c->name, a.body, cl);
    if (!a.closed) fail_msg("%s: the connection stayed open after the refusal", c->name);
    /* Logged once, with status, reason and peer. */
    if (!WAIT_UNTIL(gsrv_events(g) >= before + 1, 2000)) fail_msg("%s: no reject event", c->name);
    tu_sleep_ms(5);  /* room for a second event, which must not come */
    if (gsrv_events(g) != before + 1) fail_msg("%s: %d events, expected 1", c->name, gsrv_events(g) - before);
    char ev[512], want[32];
    gsrv_event(g, before, ev, sizeof ev);
    snprintf(want, sizeof want, "\"status\":%d", c->status);
    if (!strstr(ev, "\"event\":\"reject\"") || !strstr(ev, want) || !strstr(ev, "\"peer\":\"127.0.0.1\"") || !strstr(ev, "\"reason\":\"") ||
        strstr(ev, "\"reason\":\"\""))
        fail_msg("%s: reject event %s", c->name, ev);
}

static void expect_upgrade(gsrv *g, const char *name, const char *req, size_t len) {
    const int before = gsrv_events(g);
    int fd = wsc_tcp_connect(HOST, g->port, 3000);
    assert_true(fd >= 0);
    assert_int_equal(wsc_fd_send_all(fd, req, len, 3000), 0);
    char *head = NULL;
    int status = wsc_fd_read_response(fd, 3000, &head);
    if (status != 101) fail_msg("%s: status %d (%.200s)", name, status, head ? head : "");
    free(head);
    close(fd);
    assert_int_equal(gsrv_events(g), before);
}

/* "GET <target> HTTP/1.1" with a target of `target_len` bytes, then GOOD,
 * `extra` header lines of "X-Nn: v" and one header of `big` value bytes. */
static char *build(size_t target_len, int extra, size_t big, size_t *len) {
    size_t cap = target_len + (size_t)extra * 16 + big + 512;
    char *r = malloc(cap);
    assert_non_null(r);
    size_t n = (size_t)sprintf(r, "GET /");
    for (size_t i = 1; i < target_len; i++) r[n++] = 'a';
    n += (size_t)sprintf(r + n, " HTTP/1.1\r\n" GOOD);
    for (int i = 0; i < extra; i++) n += (size_t)sprintf(r + n, "X-%d: v\r\n", i);
    if (big) {
        n += (size_t)sprintf(r + n, "X-Big: ");
        memset(r + n, 'b', big);
        n += big;
        n += (size_t)sprintf(r + n, "\r\n");
    }
    n += (size_t)sprintf(r + n, "\r\n");
    *len = n;
    return r;
}

#define RAW(s) s, sizeof(s) - 1

static void refusals_of_the_handshake_matrix(void **state) {
    (void)state;
    gsrv *g = gsrv_start(NULL);
    const hcase cases[] = {
        /* Sec-WebSocket-Version (RFC 6455 4.4): 426 naming the one we speak. */
        {"version 12", "GET / HTTP/1.1\r\n" HOSTH UPG CONN KEY "Sec-WebSocket-Version: 12\r\n\r\n", 0, 426,
         "\r\nsec-websocket-version: 13\r\n"},
        {"version missing", "GET / HTTP/1.1\r\n" HOSTH UPG CONN KEY "\r\n", 0, 426,
         "\r\nsec-websocket-version: 13\r\n"},
        {"version list", "GET / HTTP/1.1\r\n" HOSTH UPG CONN KEY "Sec-WebSocket-Version: 13, 8\r\n\r\n", 0, 426,
         "\r\nsec-websocket-version: 13\r\n"},
        {"version repeated", "GET / HTTP/1.1\r\n" GOOD "Sec-WebSocket-Version: 8\r\n\r\n", 0, 426,
         "\r\nsec-websocket-version: 13\r\n"},
        {"version empty", "GET / HTTP/1.1\r\n" HOSTH UPG CONN KEY "Sec-WebSocket-Version:\r\n\r\n", 0, 426,
         "\r\nsec-websocket-version: 13\r\n"},
        /* Methods: only GET upgrades (RFC 6455 4.1). */
        {"POST", "POST / HTTP/1.1\r\n" GOOD "Content-Length: 0\r\n\r\n", 0, 405, "\r\nallow: get\r\n"},
        {"PUT", "PUT / HTTP/1.1\r\n" GOOD "\r\n", 0, 405, "\r\nallow: get\r\n"},
        {"DELETE", "DELETE / HTTP/1.1\r\n" GOOD "\r\n", 0, 405, "\r\nallow: get\r\n"},
        {"HEAD", "HEAD / HTTP/1.1\r\n" GOOD "\r\n", 0, 405, "\r\nallow: get\r\n"},
        {"OPTIONS *", "OPTIONS * HTTP/1.1\r\n" GOOD "\r\n", 0, 405, "\r\nallow: get\r\n"},
        {"PATCH", "PATCH / HTTP/1.1\r\n" GOOD "\r\n", 0, 405, "\r\nallow: get\r\n"},
        {"CONNECT", "CONNECT 127.0.0.1:80 HTTP/1.1\r\n" GOOD "\r\n", 0, 405, "\r\nallow: get\r\n"},
        {"unknown method", "FOO / HTTP/1.1\r\n" GOOD "\r\n", 0, 400, NULL},
        {"lower-case get", "get / HTTP/1.1\r\n" GOOD "\r\n", 0, 400, NULL},
        /* Versions: HTTP/1.0 has no Upgrade (400, see README); 2.0 is 505. */
        {"HTTP/1.0", "GET / HTTP/1.0\r\n" GOOD "\r\n", 0, 400, NULL},
        {"HTTP/2.0", "GET / HTTP/2.0\r\n" GOOD "\r\n", 0, 505, NULL},
        {"HTTP/0.9 line", "GET /\r\n\r\n", 0, 400, NULL},
        {"version junk", "GET / HTXP/1.1\r\n" GOOD "\r\n", 0, 400, NULL},
        /* Sec-WebSocket-Key: the base64 of exactly 16 bytes, once. */
        {"key missing", "GET / HTTP/1.1\r\n" HOSTH UPG CONN VER "\r\n", 0, 400, NULL},
        {"key empty", "GET / HTTP/1.1\r\n" HOSTH UPG CONN VER "Sec-WebSocket-Key:\r\n\r\n", 0, 400, NULL},
        {"key of 15 bytes", "GET / HTTP/1.1\r\n" HOSTH UPG CONN VER "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\n\r\n",
         0, 400, NULL},
        {"key of 17 bytes",
         "GET / HTTP/1.1\r\n" HOSTH UPG CONN VER "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n", 0, 400,
         NULL},
        {"key not base64",
         "GET / HTTP/1.1\r\n" HOSTH UPG CONN VER "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\n\r\n", 0, 400,
         NULL},
        {"key base64url", "GET / HTTP/1.1\r\n" HOSTH UPG CONN VER "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ-==\r\n\r\n",
         0, 400, NULL},
        {"key unused bits set",
         "GET / HTTP/1.1\r\n" HOSTH UPG CONN VER "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n\r\n", 0, 400,
         NULL},
        {"key repeated, different",
         "GET / HTTP/1.1\r\n" GOOD "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n\r\n", 0, 400, NULL},
        {"key repeated, same", "GET / HTTP/1.1\r\n" GOOD KEY "\r\n", 0, 400, NULL},
        /* Header syntax (RFC 7230 3.2.4). */
        {"space before colon", "GET / HTTP/1.1\r\nHost : 127.0.0.1\r\n" UPG CONN KEY VER "\r\n", 0, 400, NULL},
        {"tab before colon", "GET / HTTP/1.1\r\n" GOOD "X-A\t: b\r\n\r\n", 0, 400, NULL},
        {"line without colon", "GET / HTTP/1.1\r\n" GOOD "X-A b\r\n\r\n", 0, 400, NULL},
        {"obsolete folding", "GET / HTTP/1.1\r\n" GOOD "X-A: b\r\n c\r\n\r\n", 0, 400, NULL},
        {"bare LF", "GET / HTTP/1.1\n" GOOD "\r\n", 0, 400, NULL},
        {"CR without LF", "GET / HTTP/1.1\r\n" GOOD "X-A: b\rc\r\n\r\n", 0, 400, NULL},
        {"space in target", "GET /a b HTTP/1.1\r\n" GOOD "\r\n", 0, 400, NULL},
        {"empty header name", "GET / HTTP/1.1\r\n" GOOD ": b\r\n\r\n", 0, 400, NULL},
        /* Host, Connection, Upgrade. */
        {"Host missing", "GET / HTTP/1.1\r\n" UPG CONN KEY VER "\r\n", 0, 400, NULL},
        {"Host repeated", "GET / HTTP/1.1\r\n" GOOD "Host: other\r\n\r\n", 0, 400, NULL},
        {"Connection missing", "GET / HTTP/1.1\r\n" HOSTH UPG KEY VER "\r\n", 0, 400, NULL},
        {"Connection keep-alive", "GET / HTTP/1.1\r\n" HOSTH UPG KEY VER "Connection: keep-alive\r\n\r\n", 0, 400,
         NULL},
        {"Upgrade missing", "GET / HTTP/1.1\r\n" HOSTH CONN KEY VER "\r\n", 0, 426, "\r\nupgrade: websocket\r\n"},
        {"Upgrade h2c", "GET / HTTP/1.1\r\n" HOSTH CONN KEY VER "Upgrade: h2c\r\n\r\n", 0, 426,
         "\r\nupgrade: websocket\r\n"},
        /* A body: what follows an upgrade request's head is WebSocket. */
        {"Transfer-Encoding", "GET / HTTP/1.1\r\n" GOOD "Transfer-Encoding: chunked\r\n\r\n", 0, 400, NULL},
        {"Content-Length 5", "GET / HTTP/1.1\r\n" GOOD "Content-Length: 5\r\n\r\nhello", 0, 400, NULL},
        /* NUL bytes anywhere. */
        {"NUL first", RAW("\0GET / HTTP/1.1\r\n" GOOD "\r\n"), 400, NULL},
        {"NUL in method", RAW("G\0T / HTTP/1.1\r\n" GOOD "\r\n"), 400, NULL},
        {"NUL in target", RAW("GET /a\0b HTTP/1.1\r\n" GOOD "\r\n"), 400, NULL},
        {"NUL in version", RAW("GET / HTTP/1.1\0\r\n" GOOD "\r\n"), 400, NULL},
        {"NUL in name", RAW("GET / HTTP/1.1\r\n" GOOD "X-\0A: b\r\n\r\n"), 400, NULL},
        {"NUL in value", RAW("GET / HTTP/1.1\r\n" GOOD "X-A: b\0c\r\n\r\n"), 400, NULL},
        {"NUL in key", RAW("GET / HTTP/1.1\r\n" HOSTH UPG CONN VER "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\0\r\n\r\n"),
         400, NULL},
    };
    int refused = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++, refused++) expect_refusal(g, &cases[i]);

    /* The default limits (8192-byte request line, 64 header lines, 16384
     * header bytes): a long URL is 414, many or large headers 431, also
     * when the client sends far more than the limit. */
    size_t len;
    struct {
        const char *name;
        size_t target, extra, big;
        int status;
    } limits[] = {
        {"URL of 8200 bytes", 8200, 0, 0, 414},
        {"URL of 1 MiB", 1 << 20, 0, 0, 414},
        {"65 header lines", 1, 60, 0, 431},
        {"10000 header lines", 1, 10000, 0, 431},
        {"header of 17000 bytes", 1, 0, 17000, 431},
        {"header of 1 MiB", 1, 0, 1 << 20, 431},
    };
    for (size_t i = 0; i < sizeof limits / sizeof *limits; i++, refused++) {
        char *req = build(limits[i].target, (int)limits[i].extra, limits[i].big, &len);
        hcase c = {limits[i].name, req, len, limits[i].status, NULL};
        expect_refusal(g, &c);
        free(req);
    }

    /* The server kept serving, and allocated no connection for any of it. */
    expect_upgrade(g, "valid", RAW("GET / HTTP/1.1\r\n" GOOD "\r\n"));
    assert_int_equal(gsrv_events(g), refused);
    gsrv_free(g);
}

static void head_limits_are_options(void **state) {
    (void)state;
    const char *s[] = {"limits.max_request_line_bytes=256", "limits.max_headers=8",
                       "limits.max_header_bytes=1024", NULL};
    gsrv *g = gsrv_start(s);
    size_t len;
    /* "GET " + target + " HTTP/1.1" is 256 bytes with a target of 243. */
    char *req = build(243, 0, 0, &len);
    expect_upgrade(g, "request line at the limit", req, len);
    free(req);
    req = build(244, 0, 0, &len);
    hcase c1 = {"request line past the limit", req, len, 414, NULL};
    expect_refusal(g, &c1);
    free(req);
    /* GOOD is five lines: three more make eight. */
    req = build(1, 3, 0, &len);
    expect_upgrade(g, "header lines at the limit", req, len);
    free(req);
    req = build(1, 4, 0, &len);
    hcase c2 = {"header lines past the limit", req, len, 431, NULL};
    expect_refusal(g, &c2);
    free(req);
    /* GOOD's lines hold 15 + 18 + 19 + 43 + 25 = 120 bytes without CRLFs,
     * "X-Big: " 7 more: 897 bytes of value reach 1024. */
    req = build(1, 0, 897, &len);
    expect_upgrade(g, "header bytes at the limit", req, len);
    free(req);
    req = build(1, 0, 898, &len);
    hcase c3 = {"header bytes past the limit", req, len, 431, NULL};
    expect_refusal(g, &c3);
    free(req);
    gsrv_free(g);

    /* All three at their maximum at once still fit under http-parser's own
     * 80 KiB cap on a head: the request passes, and one byte more on the
     * line or in the headers gets the option's own answer. */
    const char *m[] = {"limits.max_request_line_bytes=16384", "limits.max_headers=1000",
                       "limits.max_header_bytes=61440", NULL};
    g = gsrv_start(m);
    size_t extra_bytes = 0;
    char line[32];
    for (int i = 0; i < 994; i++) extra_bytes += (size_t)snprintf(line, sizeof line, "X-%d: v", i);
    const size_t big = 61440 - 120 - extra_bytes - 7;
    req = build(16384 - 13, 994, big, &len);
    expect_upgrade(g, "every limit at its maximum", req, len);
    free(req);
    req = build(16384 - 12, 994, big, &len);
    hcase c4 = {"maximum request line plus one", req, len, 414, NULL};
    expect_refusal(g, &c4);
    free(req);
    req = build(16384 - 13, 994, big + 1, &len);
    hcase c5 = {"maximum header bytes plus one", req, len, 431, NULL};
    expect_refusal(g, &c5);
    free(req);
    char ev[512];
    gsrv_event(g, 1, ev, sizeof ev);
    assert_non_null(strstr(ev, "header block larger than 61440 bytes"));
    gsrv_free(g);

    /* Out of range: refused with the key and its range. */
    wsg_config *cfg;
    assert_int_equal(wsg_config_new(&cfg), WSG_OK);
    assert_int_equal(wsg_config_set_from_string(cfg, "limits.max_request_line_bytes=1000000"), WSG_EINVAL);
    assert_non_null(strstr(wsg_last_error(), "limits.max_request_line_bytes"));
    assert_int_equal(wsg_config_set_from_string(cfg, "limits.max_headers=2"), WSG_EINVAL);
    assert_int_equal(wsg_config_set_from_string(cfg, "limits.max_header_bytes=100"), WSG_EINVAL);
    wsg_config_free(cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refusals_of_the_handshake_matrix),
        cmocka_unit_test(head_limits_are_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
