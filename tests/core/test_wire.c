/* Behaviour on the wire: reassembly, size and UTF-8 limits, resets in the
 * middle of a frame, HTTP refusals before the upgrade, loopback-only listen. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"
#include "wsclient.h"

#define HOST "127.0.0.1"

static int setup_echo(void **state) {
    const char *settings[] = {"limits.max_message_bytes=8388608", NULL};
    tsrv *t = tsrv_start(settings, 1);
    *state = t;
    return t ? 0 : -1;
}

static int teardown(void **state) {
    tsrv *t = *state;
    int dbl = tsrv_free(t);
    return dbl ? -1 : 0;
}

static wsc *open_client(tsrv *t) {
    int status = 0;
    wsc *c = wsc_connect(HOST, t->port, "/", NULL, 3000, &status);
    assert_int_equal(status, 101);
    assert_non_null(c);
    return c;
}

static void expect_message(wsc *c, int opcode, const void *data, size_t len) {
    wsc_frame f;
    assert_int_equal(wsc_recv_message(c, &f, 5000), 1);
    assert_int_equal(f.opcode, opcode);
    assert_int_equal(f.len, len);
    if (len) assert_memory_equal(f.data, data, len);
    wsc_frame_free(&f);
}

static void echo_of_every_length_class(void **state) {
    tsrv *t = *state;
    wsc *c = open_client(t);
    size_t lens[] = {0, 1, 125, 126, 65535, 65536, 70000, 3 * 1024 * 1024};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        unsigned char *buf = malloc(lens[i] + 1);
        for (size_t j = 0; j < lens[i]; j++) buf[j] = (unsigned char)(j * 7 + i);
        assert_int_equal(wsc_send_binary(c, buf, lens[i]), 0);
        /* Messages over the write batch come back as fragments; recv_message reassembles. */
        expect_message(c, 2, buf, lens[i]);
        free(buf);
    }
    wsc_free(c);
}

static void fragments_are_reassembled(void **state) {
    tsrv *t = *state;
    wsc *c = open_client(t);
    /* Text in three fragments, with a ping between them. */
    assert_int_equal(wsc_send_frame(c, 1, 0, "Hel", 3), 0);
    assert_int_equal(wsc_send_frame(c, 9, 1, "p", 1), 0);
    assert_int_equal(wsc_send_frame(c, 0, 0, "lo, ", 4), 0);
    assert_int_equal(wsc_send_frame(c, 0, 1, "world", 5), 0);
    wsc_frame f;
    /* The pong for our ping comes first. */
    assert_int_equal(wsc_recv_message(c, &f, 3000), 1);
    assert_int_equal(f.opcode, 10);
    wsc_frame_free(&f);
    expect_message(c, 1, "Hello, world", 12);
    /* A code point split across fragments is valid. */
    assert_int_equal(wsc_send_frame(c, 1, 0, "\xe2\x82", 2), 0);
    assert_int_equal(wsc_send_frame(c, 0, 1, "\xac", 1), 0);
    expect_message(c, 1, "\xe2\x82\xac", 3);
    /* Binary in many small fragments. */
    char whole[1000];
    for (int i = 0; i < 1000; i++) whole[i] = (char)i;
    for (int i = 0; i < 100; i++)
        assert_int_equal(wsc_send_frame(c, i == 0 ? 2 : 0, i == 99, whole + i * 10, 10), 0);
    expect_message(c, 2, whole, 1000);
    assert_int_equal(tsrv_closes(t), 0);
    wsc_free(c);
}

static void byte_by_byte_frames_are_parsed(void **state) {
    tsrv *t = *state;
    wsc *c = open_client(t);
    size_t n;
    unsigned char *frame = wsc_build_frame(1, 1, "slow message", 12, 1, &n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(wsc_send_raw(c, frame + i, 1), 0);
        tu_sleep_ms(1);
    }
    free(frame);
    expect_message(c, 1, "slow message", 12);
    wsc_free(c);
}

static void oversize_message_closes_with_1009(void **state) {
    (void)state;
    const char *settings[] = {"limits.max_message_bytes=1000", NULL};
    tsrv *t = tsrv_start(settings, 1);
    assert_non_null(t);
    wsc *other = open_client(t);
    char buf[1001];
    memset(buf, 'a', sizeof buf);
    /* Exactly the limit passes. */
    wsc *c = open_client(t);
    assert_int_equal(wsc_send_frame(c, 1, 1, buf, 1000), 0);
    expect_message(c, 1, buf, 1000);
    /* One byte more closes. */
    assert_int_equal(wsc_send_frame(c, 1, 1, buf, 1001), 0);
    int code = 0;
    assert_int_equal(wsc_wait_closed(c, 3000, 1, &code), 1);
    assert_int_equal(code, 1009);
    wsc_free(c);
    /* Fragments add up: 600 + 600 is over the limit too. */
    c = open_client(t);
    assert_int_equal(wsc_send_frame(c, 2, 0, buf, 600), 0);
    assert_int_equal(wsc_send_frame(c, 0, 1, buf, 600), 0);
    assert_int_equal(wsc_wait_closed(c, 3000, 1, &code), 1);
    assert_int_equal(code, 1009);
    wsc_free(c);
    tsrv_close r;
    assert_int_equal(tsrv_wait_close(t, 0, 3000, &r), 1);
    assert_int_equal(r.code, 1009);
    assert_int_equal(r.cause, WSG_CAUSE_TOO_BIG);
    assert_int_equal(tsrv_wait_close(t, 1, 3000, &r), 1);
    assert_int_equal(r.cause, WSG_CAUSE_TOO_BIG);
    /* The other client never noticed. */
    assert_int_equal(wsc_send_text(other, "fine"), 0);
    expect_message(other, 1, "fine", 4);
    wsc_free(other);
    assert_int_equal(tsrv_free(t), 0);
}

static void invalid_utf8_closes_with_1007(void **state) {
    tsrv *t = *state;
    const char *bad[] = {"\xff", "abc\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "ok\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        wsc *c = open_client(t);
        assert_int_equal(wsc_send_frame(c, 1, 1, bad[i], strlen(bad[i])), 0);
        int code = 0;
        assert_int_equal(wsc_wait_closed(c, 3000, 1, &code), 1);
        assert_int_equal(code, 1007);
        wsc_free(c);
        tsrv_close r;
        assert_int_equal(tsrv_wait_close(t, (int)i, 3000, &r), 1);
        assert_int_equal(r.cause, WSG_CAUSE_INVALID_UTF8);
        assert_int_equal(r.code, 1007);
    }
    /* A text message that ends inside a code point. */
    wsc *c = open_client(t);
    assert_int_equal(wsc_send_frame(c, 1, 0, "ab", 2), 0);
    assert_int_equal(wsc_send_frame(c, 0, 1, "\xe2\x82", 2), 0);
    int code = 0;
    assert_int_equal(wsc_wait_closed(c, 3000, 1, &code), 1);
    assert_int_equal(code, 1007);
    wsc_free(c);
    /* The same bytes as binary are fine. */
    c = open_client(t);
    assert_int_equal(wsc_send_binary(c, "\xff\xfe", 2), 0);
    expect_message(c, 2, "\xff\xfe", 2);
    wsc_free(c);
}

static void reset_mid_frame_ends_only_that_connection(void **state) {
    tsrv *t = *state;
    wsc *bystander = open_client(t);
    int fds_before = tu_open_fds();
    for (int round = 0; round < 20; round++) {
        wsc *c = open_client(t);
        size_t n;
        unsigned char payload[3000];
        memset(payload, 'q', sizeof payload);
        unsigned char *frame = wsc_build_frame(2, 1, payload, sizeof payload, 1, &n);
        /* Header and part of the payload, then a TCP reset. */
        assert_int_equal(wsc_send_raw(c, frame, (size_t)(round % 2 ? 1 : 700)), 0);
        free(frame);
        tu_sleep_ms(2);
        wsc_abort(c);
    }
    assert_true(WAIT_UNTIL(tsrv_closes(t) == 20, 5000));
    for (int i = 0; i < 20; i++) {
        tsrv_close r;
        assert_int_equal(tsrv_wait_close(t, i, 0, &r), 1);
        assert_int_equal(r.cause, WSG_CAUSE_LOST);
        assert_int_equal(r.code, 1006);
    }
    /* on_close runs before the id leaves the registry: wait for the count. */
    assert_true(WAIT_UNTIL(tu_conn_count(t->srv) == 1, 3000));
    assert_int_equal(wsc_send_text(bystander, "unharmed"), 0);
    expect_message(bystander, 1, "unharmed", 8);
    assert_true(WAIT_UNTIL(tu_open_fds() == fds_before, 3000));
    wsc_free(bystander);
}

/* Sends a raw HTTP request and returns the status; *head gets the response head. */
static int raw_request(tsrv *t, const char *req, char **head) {
    int fd = wsc_tcp_connect(HOST, t->port, 3000);
    assert_true(fd >= 0);
    assert_int_equal(wsc_fd_send_all(fd, req, strlen(req), 3000), 0);
    int status = wsc_fd_read_response(fd, 3000, head);
    close(fd);
    return status;
}

static void refusals_are_real_http_responses(void **state) {
    (void)state;
    const char *settings[] = {"server.path=/chat", "limits.max_connections=2",
                              "server.subprotocols=v1", NULL};
    tsrv *t = tsrv_start(settings, 1);
    assert_non_null(t);
    int status;
    char *head = NULL;
    /* Wrong path: 404, on HTTP/1.1. */
    assert_null(wsc_connect_ex(HOST, t->port, "/other", NULL, 3000, &status, &head));
    assert_int_equal(status, 404);
    assert_non_null(head);
    assert_memory_equal(head, "HTTP/1.1 404", 12);
    free(head);
    /* A path that only shares a prefix is not below /chat. */
    assert_null(wsc_connect(HOST, t->port, "/chatroom", NULL, 3000, &status));
    assert_int_equal(status, 404);
    /* Below /chat is served. */
    wsc *a = wsc_connect(HOST, t->port, "/chat/room1", NULL, 3000, &status);
    assert_non_null(a);
    /* Unsupported subprotocol: 400 instead of a silent drop. */
    assert_null(wsc_connect(HOST, t->port, "/chat", "Sec-WebSocket-Protocol: v2\r\n", 3000, &status));
    assert_int_equal(status, 400);
    wsc *b = wsc_connect(HOST, t->port, "/chat?x=1", "Sec-WebSocket-Protocol: v2, v1\r\n", 3000, &status);
    assert_non_null(b);
    /* Connection limit: 503 with Retry-After. */
    assert_true(WAIT_UNTIL(tu_conn_count(t->srv) == 2, 3000));
    head = NULL;
    assert_null(wsc_connect_ex(HOST, t->port, "/chat", NULL, 3000, &status, &head));
    assert_int_equal(status, 503);
    assert_non_null(strstr(head, "retry-after:"));
    free(head);
    /* Plain HTTP on the WebSocket port: 426. */
    head = NULL;
    status = raw_request(t, "GET /chat HTTP/1.1\r\nHost: x\r\n\r\n", &head);
    assert_int_equal(status, 426);
    assert_non_null(head);
    assert_memory_equal(head, "HTTP/1.1 426", 12);
    free(head);
    /* Nothing was allocated for the refused requests. */
    assert_int_equal(tsrv_opens(t), 2);
    wsc_free(a);
    wsc_free(b);
    assert_true(WAIT_UNTIL(tu_conn_count(t->srv) == 0, 3000));
    /* A freed slot is usable again. */
    a = wsc_connect(HOST, t->port, "/chat", NULL, 3000, &status);
    assert_non_null(a);
    wsc_free(a);
    assert_int_equal(tsrv_free(t), 0);
}

static void origin_policy_refuses_with_403(void **state) {
    (void)state;
    const char *settings[] = {"security.allowed_origins=https://app.example.com,https://*.example.org",
                              NULL};
    tsrv *t = tsrv_start(settings, 1);
    assert_non_null(t);
    struct {
        const char *headers;
        int status;
    } cases[] = {
        {"Origin: https://app.example.com\r\n", 101},
        {"Origin: https://a.example.org\r\n", 101},
        {"", 101}, /* native client: no Origin */
        {"Origin: https://evil.example\r\n", 403},
        {"Origin: https://example.org\r\n", 403},
        {"Origin: https://example.org.evil.net\r\n", 403},
        {"Origin: https://evilexample.org\r\n", 403},
        {"Origin: http://app.example.com\r\n", 403},
        {"Origin: null\r\n", 403},
        {"Origin: https://app.example.com/path\r\n", 403},
        {"Origin: https://app.example.com\r\nOrigin: https://app.example.com\r\n", 403},
    };
    int opened = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int status = 0;
        char *head = NULL;
        wsc *c = wsc_connect_ex(HOST, t->port, "/", cases[i].headers, 3000, &status, &head);
        if (status != cases[i].status) fail_msg("case %zu (%s): status %d", i, cases[i].headers, status);
        if (cases[i].status == 403) {
            assert_null(c);
            assert_memory_equal(head, "HTTP/1.1 403 Forbidden", 22);
        } else {
            assert_non_null(c);
            opened++;
            assert_int_equal(wsc_send_text(c, "ok"), 0);
            expect_message(c, 1, "ok", 2);
            wsc_free(c);
        }
        free(head);
    }
    assert_true(WAIT_UNTIL(tsrv_opens(t) == opened, 3000));
    tsrv_free(t);

    /* Same-origin by default; require_origin refuses native clients. */
    const char *strict[] = {"security.require_origin=true", NULL};
    t = tsrv_start(strict, 1);
    assert_non_null(t);
    int status = 0;
    assert_null(wsc_connect(HOST, t->port, "/", NULL, 3000, &status));
    assert_int_equal(status, 403);
    char same[64];
    snprintf(same, sizeof same, "Origin: http://127.0.0.1:%d\r\n", t->port);
    wsc *c = wsc_connect(HOST, t->port, "/", same, 3000, &status);
    assert_non_null(c);
    wsc_free(c);
    assert_null(wsc_connect(HOST, t->port, "/", "Origin: http://localhost:1\r\n", 3000, &status));
    assert_int_equal(status, 403);
    tsrv_free(t);
}

/* An upgrade request with this Host and Origin, on a raw socket: the status. */
static int status_for_host(tsrv *t, const char *host, const char *origin) {
    int fd = wsc_tcp_connect(HOST, t->port, 3000);
    assert_true(fd >= 0);
    char req[512];
    snprintf(req, sizeof req,
             "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Origin: %s\r\n\r\n",
             host, origin);
    assert_int_equal(wsc_fd_send_all(fd, req, strlen(req), 3000), 0);
    char *head = NULL;
    int status = wsc_fd_read_response(fd, 3000, &head);
    free(head);
    close(fd);
    return status;
}

/* The Host header is the client's choice (DNS rebinding points any name at
 * us): a page "of the same origin" by Host passes only when the operator
 * says so. It used to pass any allowlist. */
static void host_header_does_not_pass_an_allowlist(void **state) {
    (void)state;
    const char *listed[] = {"security.allowed_origins=https://app.example.com",
                            "security.require_origin=true", NULL};
    tsrv *t = tsrv_start(listed, 1);
    assert_non_null(t);
    char self_host[64], self_origin[64];
    snprintf(self_host, sizeof self_host, "127.0.0.1:%d", t->port);
    snprintf(self_origin, sizeof self_origin, "http://127.0.0.1:%d", t->port);
    assert_int_equal(status_for_host(t, "attacker.test", "http://attacker.test"), 403);
    assert_int_equal(status_for_host(t, "attacker.test:80", "http://attacker.test"), 403);
    assert_int_equal(status_for_host(t, self_host, self_origin), 403);
    assert_int_equal(status_for_host(t, "attacker.test", "https://app.example.com"), 101);
    tsrv_free(t);

    /* Asked for: the old behaviour, Host-based same origin beside the list. */
    const char *trusting[] = {"security.allowed_origins=https://app.example.com",
                              "security.require_origin=true", "security.allow_same_origin=true",
                              NULL};
    t = tsrv_start(trusting, 1);
    assert_non_null(t);
    assert_int_equal(status_for_host(t, "attacker.test", "http://attacker.test"), 101);
    assert_int_equal(status_for_host(t, "attacker.test", "https://attacker.test"), 403); /* not TLS */
    assert_int_equal(status_for_host(t, "attacker.test", "https://app.example.com"), 101);
    tsrv_free(t);

    /* No list: same origin by default (auto); false refuses every Origin. */
    t = tsrv_start(NULL, 1);
    assert_non_null(t);
    snprintf(self_host, sizeof self_host, "127.0.0.1:%d", t->port);
    snprintf(self_origin, sizeof self_origin, "http://127.0.0.1:%d", t->port);
    assert_int_equal(status_for_host(t, self_host, self_origin), 101);
    assert_int_equal(status_for_host(t, self_host, "http://other.test"), 403);
    tsrv_free(t);
    const char *never[] = {"security.allow_same_origin=false", NULL};
    t = tsrv_start(never, 1);
    assert_non_null(t);
    snprintf(self_host, sizeof self_host, "127.0.0.1:%d", t->port);
    snprintf(self_origin, sizeof self_origin, "http://127.0.0.1:%d", t->port);
    assert_int_equal(status_for_host(t, self_host, self_origin), 403);
    int status = 0;
    wsc *c = wsc_connect(HOST, t->port, "/", NULL, 3000, &status); /* native: no Origin */
    assert_non_null(c);
    wsc_free(c);
    tsrv_free(t);
}

static void garbage_before_upgrade_is_harmless(void **state) {
    tsrv *t = *state;
    const char *junk[] = {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "NOT HTTP AT ALL\r\n\r\n",
                          "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                          "GET /" };
    for (size_t i = 0; i < sizeof junk / sizeof *junk; i++) {
        int fd = wsc_tcp_connect(HOST, t->port, 3000);
        assert_true(fd >= 0);
        wsc_fd_send_all(fd, junk[i], strlen(junk[i]), 1000);
        if (i == sizeof junk / sizeof *junk - 1) {
            close(fd); /* half a request line, then gone */
            continue;
        }
        char buf[512];
        /* Whatever the answer, the server ends the connection and survives. */
        long r;
        int64_t deadline = tu_now_ms() + 6000;
        while ((r = wsc_fd_recv(fd, buf, sizeof buf, 200)) != 0 && r != -1 && tu_now_ms() < deadline) {
        }
        close(fd);
    }
    wsc *c = open_client(t);
    assert_int_equal(wsc_send_text(c, "alive"), 0);
    expect_message(c, 1, "alive", 5);
    wsc_free(c);
    assert_int_equal(tsrv_opens(t), 1);
}

/* /proc/net/tcp{,6}: is there a LISTEN socket on `port`, and with which local address? */
static int listening_addrs(int port, char *out, size_t cap) {
    const char *files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    int found = 0;
    out[0] = 0;
    for (int f = 0; f < 2; f++) {
        FILE *fp = fopen(files[f], "r");
        if (!fp) continue;
        char line[512];
        while (fgets(line, sizeof line, fp)) {
            char local[64];
            unsigned st;
            if (sscanf(line, " %*d: %63s %*s %x", local, &st) != 2 || st != 0x0A) continue;
            char *colon = strrchr(local, ':');
            if (!colon || (int)strtol(colon + 1, NULL, 16) != port) continue;
            *colon = 0;
            found++;
            strncat(out, local, cap - strlen(out) - 2);
            strncat(out, " ", cap - strlen(out) - 1);
        }
        fclose(fp);
    }
    return found;
}

static void loopback_host_listens_on_loopback_only(void **state) {
    tsrv *t = *state; /* listen.host=127.0.0.1 */
    char addrs[256];
    assert_int_equal(listening_addrs(t->port, addrs, sizeof addrs), 1);
    assert_string_equal(addrs, "0100007F "); /* 127.0.0.1 in /proc byte order */
    /* IPv6 loopback is not served. */
    assert_int_equal(wsc_tcp_connect("::1", t->port, 1000), -1);
    /* Nor is any other local address of this machine. */
    struct ifaddrs *ifs, *i;
    assert_int_equal(getifaddrs(&ifs), 0);
    for (i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, ip, sizeof ip);
        if (strncmp(ip, "127.", 4) == 0) continue;
        int fd = wsc_tcp_connect(ip, t->port, 1000);
        if (fd >= 0) close(fd);
        assert_int_equal(fd, -1);
    }
    freeifaddrs(ifs);
    /* The default (empty host) listens on every interface, IPv6 included. */
    wsg_server *any;
    wsg_config *cfg;
    wsg_config_new(&cfg);
    wsg_config_set_int(cfg, "listen.port", 0);
    wsg_config_set_string(cfg, "log.level", "off");
    assert_int_equal(wsg_server_new(&any, cfg), WSG_OK);
    wsg_config_free(cfg);
    assert_int_equal(wsg_server_listen(any), WSG_OK);
    int port;
    assert_int_equal(wsg_server_port(any, &port), WSG_OK);
    assert_int_equal(listening_addrs(port, addrs, sizeof addrs), 1);
    assert_string_equal(addrs, "00000000000000000000000000000000 "); /* [::] */
    wsg_server_free(any);
}

static void ipv6_loopback_host(void **state) {
    (void)state;
    wsg_server *srv;
    wsg_config *cfg;
    wsg_config_new(&cfg);
    wsg_config_set_string(cfg, "listen.host", "::1");
    wsg_config_set_int(cfg, "listen.port", 0);
    wsg_config_set_string(cfg, "log.level", "off");
    assert_int_equal(wsg_server_new(&srv, cfg), WSG_OK);
    wsg_config_free(cfg);
    wsg_server_on_message(srv, NULL, NULL, NULL);
    assert_int_equal(wsg_server_start(srv), WSG_OK);
    int port;
    assert_int_equal(wsg_server_port(srv, &port), WSG_OK);
    int status = 0;
    wsc *c = wsc_connect("::1", port, "/", NULL, 3000, &status);
    assert_non_null(c);
    assert_true(WAIT_UNTIL(tu_conn_count(srv) == 1, 3000));
    wsg_conn_id id;
    size_t n;
    wsg_server_conn_ids(srv, &id, 1, &n);
    wsg_conn_info *info;
    assert_int_equal(wsg_conn_info_get(srv, id, &info), WSG_OK);
    const char *addr;
    wsg_conn_info_string(info, WSG_INFO_PEER_ADDR, &addr);
    assert_string_equal(addr, "::1");
    wsg_conn_info_free(info);
    wsc_free(c);
    assert_int_equal(wsc_tcp_connect("127.0.0.1", port, 1000), -1);
    wsg_server_free(srv);
}

/* ---- RFC 6455 rules the server enforces itself (lws' ws role let the
 * first ones through: each was a "Known limit (libwebsockets 4.1.6)") ---- */

/* Sends `frame` (already encoded) on a fresh connection and expects the
 * server's close frame with `code`, and on_close with that code and cause. */
static void expect_refusal(tsrv *t, const void *frame, size_t len, int code, wsg_close_cause cause) {
    wsc *c = open_client(t);
    int before = tsrv_closes(t);
    assert_int_equal(wsc_send_raw(c, frame, len), 0);
    int got = 0;
    assert_int_equal(wsc_wait_closed(c, 3000, 1, &got), 1);
    assert_int_equal(got, code);
    wsc_free(c);
    tsrv_close r;
    assert_int_equal(tsrv_wait_close(t, before, 3000, &r), 1);
    /* The close event reports the code that was sent, not 1006. */
    assert_int_equal(r.code, code);
    assert_int_equal(r.cause, cause);
}

static void protocol_violations_close_with_1002(void **state) {
    tsrv *t = *state;
    size_t n;
    /* An unmasked client frame (RFC 6455 5.1). */
    unsigned char *f = wsc_build_frame(1, 1, "hi", 2, 0, &n);
    expect_refusal(t, f, n, 1002, WSG_CAUSE_PROTOCOL_ERROR);
    free(f);
    /* RSV2 and RSV3 with no extension, RSV1 without permessage-deflate. */
    const int rsv[] = {0x20, 0x10, 0x40};
    for (int i = 0; i < 3; i++) {
        f = wsc_build_frame(1 | rsv[i], 1, "hi", 2, 1, &n);
        expect_refusal(t, f, n, 1002, WSG_CAUSE_PROTOCOL_ERROR);
        free(f);
    }
    /* Reserved opcodes, a fragmented ping, a 126-byte ping, a stray continuation. */
    const int ops[] = {3, 7, 0xB, 0xF};
    for (int i = 0; i < 4; i++) {
        f = wsc_build_frame(ops[i], 1, "x", 1, 1, &n);
        expect_refusal(t, f, n, 1002, WSG_CAUSE_PROTOCOL_ERROR);
        free(f);
    }
    f = wsc_build_frame(9, 0, "p", 1, 1, &n);
    expect_refusal(t, f, n, 1002, WSG_CAUSE_PROTOCOL_ERROR);
    free(f);
    char big[126];
    memset(big, 'p', sizeof big);
    f = wsc_build_frame(9, 1, big, sizeof big, 1, &n);
    expect_refusal(t, f, n, 1002, WSG_CAUSE_PROTOCOL_ERROR);
    free(f);
    f = wsc_build_frame(0, 1, "x", 1, 1, &n);
    expect_refusal(t, f, n, 1002, WSG_CAUSE_PROTOCOL_ERROR);
    free(f);
}

static void close_frames_are_checked(void **state) {
    tsrv *t = *state;
    size_t n;
    /* Codes a peer may not send (RFC 6455 7.4): 1002 back. */
    const int bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        unsigned char p[2] = {(unsigned char)(bad[i] >> 8), (unsigned char)bad[i]};
        unsigned char *f = wsc_build_frame(8, 1, p, 2, 1, &n);
        expect_refusal(t, f, n, 1002, WSG_CAUSE_PROTOCOL_ERROR);
        free(f);
    }
    /* A one-byte payload. */
    unsigned char *f = wsc_build_frame(8, 1, "\x03", 1, 1, &n);
    expect_refusal(t, f, n, 1002, WSG_CAUSE_PROTOCOL_ERROR);
    free(f);
    /* A reason that is not UTF-8 (RFC 6455 8.1): 1007. */
    f = wsc_build_frame(8, 1, "\x03\xe8\xff\xfe", 4, 1, &n);
    expect_refusal(t, f, n, 1007, WSG_CAUSE_INVALID_UTF8);
    free(f);
    /* Valid ones are answered with the same code and reported as the peer's. */
    const int good[] = {1000, 1003, 1007, 1014, 3000, 4999};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        wsc *c = open_client(t);
        int before = tsrv_closes(t);
        assert_int_equal(wsc_send_close(c, good[i], "bye \xc3\xa9"), 0);
        int got = 0;
        assert_int_equal(wsc_wait_closed(c, 3000, 0, &got), 1);
        assert_int_equal(got, good[i]);
        wsc_free(c);
        tsrv_close r;
        assert_int_equal(tsrv_wait_close(t, before, 3000, &r), 1);
        assert_int_equal(r.code, good[i]);
        assert_int_equal(r.cause, WSG_CAUSE_PEER);
    }
}

static void every_ping_gets_its_pong(void **state) {
    tsrv *t = *state;
    wsc *c = open_client(t);
    wsc_set_auto_pong(c, 0);
    /* Ten pings back to back in one write (lws answered only the first). */
    unsigned char buf[10 * 16];
    size_t used = 0;
    for (int i = 0; i < 10; i++) {
        char p[8];
        snprintf(p, sizeof p, "ping%02d", i);
        size_t n;
        unsigned char *f = wsc_build_frame(9, 1, p, 6, 1, &n);
        memcpy(buf + used, f, n);
        used += n;
        free(f);
    }
    assert_int_equal(wsc_send_raw(c, buf, used), 0);
    for (int i = 0; i < 10; i++) {
        wsc_frame f;
        assert_int_equal(wsc_recv_frame(c, &f, 3000), 1);
        assert_int_equal(f.opcode, 10);
        char want[8];
        snprintf(want, sizeof want, "ping%02d", i);
        assert_int_equal(f.len, 6);
        assert_memory_equal(f.data, want, 6);
        wsc_frame_free(&f);
    }
    /* A ping between the fragments of a message is answered, the message intact. */
    assert_int_equal(wsc_send_frame(c, 1, 0, "ab", 2), 0);
    assert_int_equal(wsc_send_frame(c, 9, 1, "mid", 3), 0);
    assert_int_equal(wsc_send_frame(c, 0, 1, "cd", 2), 0);
    wsc_frame f;
    assert_int_equal(wsc_recv_frame(c, &f, 3000), 1);
    assert_int_equal(f.opcode, 10);
    wsc_frame_free(&f);
    expect_message(c, 1, "abcd", 4);
    assert_int_equal(wsc_close(c, 1000, 3000), 1000);
}

/* A burst of 100,000 pings in one write (the lws engine answered about
 * 1,000): each gets its own pong, in order, and the connection lives on. */
static void a_burst_of_pings_is_answered_in_full(void **state) {
    tsrv *t = *state;
    wsc *c = open_client(t);
    wsc_set_auto_pong(c, 0);
    enum { N = 100000 };
    size_t one;
    unsigned char *f = wsc_build_frame(9, 1, "000000", 6, 1, &one);
    free(f);
    unsigned char *buf = malloc(N * one);
    assert_non_null(buf);
    for (int i = 0; i < N; i++) {
        char p[8];
        snprintf(p, sizeof p, "%06d", i);
        f = wsc_build_frame(9, 1, p, 6, 1, &one);
        memcpy(buf + (size_t)i * one, f, one);
        free(f);
    }
    int64_t start = tu_now_ms();
    assert_int_equal(wsc_send_raw(c, buf, N * one), 0);
    free(buf);
    for (int i = 0; i < N; i++) {
        wsc_frame r;
        if (wsc_recv_frame(c, &r, 5000) != 1) fail_msg("pong %d of %d missing", i, N);
        char want[8];
        snprintf(want, sizeof want, "%06d", i);
        if (r.opcode != 10 || r.len != 6 || memcmp(r.data, want, 6))
            fail_msg("frame %d: opcode %d, %.*s", i, r.opcode, (int)r.len, (const char *)r.data);
        wsc_frame_free(&r);
    }
    assert_true(tu_now_ms() - start < 30000);
    assert_int_equal(wsc_send_text(c, "after"), 0);
    expect_message(c, 1, "after", 5);
    assert_int_equal(wsc_close(c, 1000, 3000), 1000);
}

/* The close event's `code` (what we sent) and `peer_code` (what the peer
 * sent, even when refused) are separate. */
static void close_event_reports_both_codes(void **state) {
    (void)state;
    const char *settings[] = {"log.level=info", NULL};
    tsrv *t = tsrv_start(settings, 1);
    assert_non_null(t);
    struct {
        const char *payload;
        size_t len;
        const char *want; /* in the close event */
        const char *absent;
    } cases[] = {
        {"\x03\xe7" "bye", 5, "\"code\":1002,\"peer_code\":999,", NULL},       /* code not allowed */
        {"\x03\xe8\xff\xfe", 4, "\"code\":1007,\"peer_code\":1000,", NULL},  /* reason not UTF-8 */
        {"\x03", 1, "\"code\":1002,", "peer_code"},                           /* no code at all */
        {"\x0f\xa1ok", 4, "\"code\":4001,\"peer_code\":4001,", NULL},          /* echoed */
        {"", 0, "\"code\":1005,\"peer_code\":1005,", NULL},                    /* empty */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        wsc *c = open_client(t);
        size_t n;
        unsigned char *f = wsc_build_frame(8, 1, cases[i].payload, cases[i].len, 1, &n);
        assert_int_equal(wsc_send_raw(c, f, n), 0);
        free(f);
        assert_int_equal(wsc_wait_closed(c, 3000, 0, NULL), 1);
        wsc_free(c);
        char line[1024];
        assert_true(WAIT_UNTIL(tsrv_log_count(t, "close") == (int)i + 1, 3000));
        assert_int_equal(tsrv_log_get(t, "close", (int)i, line, sizeof line), 1);
        if (!strstr(line, cases[i].want)) fail_msg("case %zu: %s", i, line);
        if (cases[i].absent && strstr(line, cases[i].absent)) fail_msg("case %zu: %s", i, line);
    }
    /* We close first with 4100; the peer answers 1000. */
    wsc *c = open_client(t);
    assert_true(WAIT_UNTIL(tsrv_opens(t) == 6, 3000));
    assert_int_equal(wsg_conn_close(t->srv, tsrv_last_open(t), 4100, "done"), WSG_OK);
    wsc_frame f;
    assert_int_equal(wsc_recv_frame(c, &f, 3000), 1);
    assert_int_equal(f.opcode, 8);
    wsc_frame_free(&f);
    assert_int_equal(wsc_send_close(c, 1000, "ok"), 0);
    assert_true(WAIT_UNTIL(tsrv_log_count(t, "close") == 6, 3000));
    wsc_free(c);
    char line[1024];
    assert_int_equal(tsrv_log_get(t, "close", 5, line, sizeof line), 1);
    if (!strstr(line, "\"code\":4100,\"peer_code\":1000,")) fail_msg("%s", line);
    assert_int_equal(tsrv_free(t), 0);
}

static void raw_query_is_kept(void **state) {
    tsrv *t = *state;
    int status = 0;
    wsc *c = wsc_connect(HOST, t->port, "/room%2F1?a=x%20y&b=%C3%A9&c", NULL, 3000, &status);
    assert_non_null(c);
    assert_true(WAIT_UNTIL(tsrv_opens(t) >= 1, 3000));
    wsg_conn_info *info;
    assert_int_equal(wsg_conn_info_get(t->srv, tsrv_last_open(t), &info), WSG_OK);
    const char *s;
    assert_int_equal(wsg_conn_info_string(info, WSG_INFO_QUERY, &s), WSG_OK);
    assert_string_equal(s, "a=x%20y&b=%C3%A9&c");
    assert_int_equal(wsg_conn_info_string(info, WSG_INFO_PATH, &s), WSG_OK);
    assert_string_equal(s, "/room%2F1");
    wsg_conn_info_free(info);
    wsc_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(echo_of_every_length_class, setup_echo, teardown),
        cmocka_unit_test_setup_teardown(fragments_are_reassembled, setup_echo, teardown),
        cmocka_unit_test_setup_teardown(byte_by_byte_frames_are_parsed, setup_echo, teardown),
        cmocka_unit_test(oversize_message_closes_with_1009),
        cmocka_unit_test_setup_teardown(invalid_utf8_closes_with_1007, setup_echo, teardown),
        cmocka_unit_test_setup_teardown(reset_mid_frame_ends_only_that_connection, setup_echo, teardown),
        cmocka_unit_test(refusals_are_real_http_responses),
        cmocka_unit_test(origin_policy_refuses_with_403),
        cmocka_unit_test_setup_teardown(garbage_before_upgrade_is_harmless, setup_echo, teardown),
        cmocka_unit_test_setup_teardown(loopback_host_listens_on_loopback_only, setup_echo, teardown),
        cmocka_unit_test(ipv6_loopback_host),
        cmocka_unit_test_setup_teardown(protocol_violations_close_with_1002, setup_echo, teardown),
        cmocka_unit_test_setup_teardown(close_frames_are_checked, setup_echo, teardown),
        cmocka_unit_test_setup_teardown(every_ping_gets_its_pong, setup_echo, teardown),
        cmocka_unit_test_setup_teardown(raw_query_is_kept, setup_echo, teardown),
        cmocka_unit_test(host_header_does_not_pass_an_allowlist),
        cmocka_unit_test_setup_teardown(a_burst_of_pings_is_answered_in_full, setup_echo, teardown),
        cmocka_unit_test(close_event_reports_both_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
