/* Abuse limits from real clients: per-IP and per-user connection limits,
 * the handshake rate per IP, the message rate per connection (close and
 * drop), and X-Forwarded-For believed only from trusted proxies. Every
 * refusal is checked as the client sees it, and the server keeps serving. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "wsclient.h"

#define HOST "127.0.0.1"

static wsc *open_ok(tsrv *t, const char *headers) {
    int status = 0;
    wsc *c = wsc_connect(HOST, t->port, "/", headers, 3000, &status);
    if (!c) fail_msg("expected 101, got %d", status);
    return c;
}

static int refused_status(tsrv *t, const char *headers) {
    int status = 0;
    wsc *c = wsc_connect(HOST, t->port, "/", headers, 3000, &status);
    if (c) wsc_free(c);
    return c ? 101 : status;
}

static void per_ip_connection_limit(void **state) {
    (void)state;
    const char *s[] = {"limits.max_connections_per_ip=2", NULL};
    tsrv *t = tsrv_start(s, 1);
    assert_non_null(t);
    wsc *a = open_ok(t, NULL), *b = open_ok(t, NULL);
    char *head = NULL;
    int status = 0;
    assert_null(wsc_connect_ex(HOST, t->port, "/", NULL, 3000, &status, &head));
    assert_int_equal(status, 429);
    assert_non_null(strstr(head, "retry-after:"));
    free(head);
    wsc_free(a);
    assert_true(WAIT_UNTIL(tu_conn_count(t->srv) == 1, 3000));
    wsc *c = open_ok(t, NULL); /* a slot came back */
    assert_int_equal(wsc_send_text(b, "still"), 0);
    wsc_frame f;
    assert_int_equal(wsc_recv_message(b, &f, 3000), 1);
    wsc_frame_free(&f);
    wsc_free(b);
    wsc_free(c);
    assert_int_equal(tsrv_free(t), 0);
}

static void handshake_rate_per_ip(void **state) {
    (void)state;
    const char *s[] = {"limits.handshakes_per_ip_per_s=5", "limits.handshake_burst=5", NULL};
    tsrv *t = tsrv_start(s, 1);
    assert_non_null(t);
    int ok = 0, limited = 0;
    for (int i = 0; i < 8; i++) {
        int st = refused_status(t, NULL);
        if (st == 101) ok++;
        else if (st == 429) limited++;
        else fail_msg("unexpected status %d", st);
    }
    assert_int_equal(ok, 5); /* the burst */
    assert_int_equal(limited, 3);
    tu_sleep_ms(1100); /* refilled */
    assert_int_equal(refused_status(t, NULL), 101);
    tsrv_free(t);
}

static void message_rate_close_and_drop(void **state) {
    (void)state;
    const char *close_policy[] = {"limits.messages_per_s=10", "limits.message_burst=10", NULL};
    tsrv *t = tsrv_start(close_policy, 1);
    assert_non_null(t);
    wsc *c = open_ok(t, NULL);
    for (int i = 0; i < 15; i++) wsc_send_text(c, "m");
    int code = 0;
    assert_int_equal(wsc_wait_closed(c, 3000, 1, &code), 1);
    assert_int_equal(code, 1008);
    tsrv_close r;
    assert_int_equal(tsrv_wait_close(t, 0, 3000, &r), 1);
    assert_int_equal(r.cause, WSG_CAUSE_RATE_LIMIT);
    assert_int_equal(tsrv_messages(t), 10);
    wsc_free(c);
    tsrv_free(t);

    const char *drop_policy[] = {"limits.messages_per_s=10", "limits.message_burst=10",
                                 "limits.rate_policy=drop", NULL};
    t = tsrv_start(drop_policy, 1);
    assert_non_null(t);
    c = open_ok(t, NULL);
    for (int i = 0; i < 25; i++) wsc_send_text(c, "m");
    int echoed = 0;
    wsc_frame f;
    while (wsc_recv_message(c, &f, 300) == 1) {
        echoed++;
        wsc_frame_free(&f);
    }
    assert_true(echoed >= 10 && echoed <= 12); /* the burst, plus what refilled meanwhile */
    assert_int_equal(tsrv_closes(t), 0);    /* dropped, not closed */
    wsc_free(c);
    tsrv_free(t);
}

/* `n` copies of one frame in a single buffer (freed by the caller). */
static unsigned char *repeat_frame(int opcode, int fin, const char *payload, int n, size_t *len) {
    size_t one;
    unsigned char *f = wsc_build_frame(opcode, fin, payload, strlen(payload), 1, &one);
    unsigned char *buf = malloc(one * (size_t)n);
    assert_non_null(buf);
    for (int i = 0; i < n; i++) memcpy(buf + one * (size_t)i, f, one);
    free(f);
    *len = one * (size_t)n;
    return buf;
}

/* Reads until the server's close frame: its code, and the pongs before it. */
static int close_code_after_pongs(wsc *c, int *pongs) {
    *pongs = 0;
    for (;;) {
        wsc_frame f;
        if (wsc_recv_frame(c, &f, 5000) != 1) return -1;
        int op = f.opcode, code = f.len >= 2 ? (f.data[0] << 8) | f.data[1] : 1005;
        wsc_frame_free(&f);
        if (op == 8) return code;
        if (op == 10) ++*pongs;
    }
}

/* Floods of pings, pongs or 1-byte fragments count against
 * limits.frames_per_s: past the burst the connection is closed with 1008
 * and logged once, and nothing after the limit is answered or delivered.
 * They used to count against nothing (messages_per_s sees whole messages). */
static void frame_rate_closes_floods(void **state) {
    (void)state;
    const char *settings[] = {"limits.frames_per_s=100", "limits.frame_burst=100", "log.level=warn",
                              NULL};
    tsrv *t = tsrv_start(settings, 1);
    assert_non_null(t);
    /* Under the limit: a message in 40 fragments and 10 pings pass. */
    wsc *ok = open_ok(t, NULL);
    for (int i = 0; i < 40; i++) assert_int_equal(wsc_send_frame(ok, i ? 0 : 1, i == 39, "x", 1), 0);
    for (int i = 0; i < 10; i++) assert_int_equal(wsc_send_frame(ok, 9, 1, "p", 1), 0);
    wsc_frame m;
    int pongs = 0;
    for (;;) { /* pongs go out ahead of data */
        assert_int_equal(wsc_recv_message(ok, &m, 3000), 1);
        if (m.opcode != 10) break;
        pongs++;
        wsc_frame_free(&m);
    }
    assert_int_equal(m.opcode, 1);
    assert_int_equal(m.len, 40);
    wsc_frame_free(&m);
    while (pongs < 10 && wsc_recv_message(ok, &m, 3000) == 1) {
        assert_int_equal(m.opcode, 10);
        pongs++;
        wsc_frame_free(&m);
    }
    assert_int_equal(pongs, 10);

    struct {
        int opcode, fin;
        const char *what;
    } floods[] = {{9, 1, "pings"}, {10, 1, "pongs"}, {0, 0, "fragments"}};
    for (int k = 0; k < 3; k++) {
        wsc *c = open_ok(t, NULL);
        wsc_set_auto_pong(c, 0);
        if (floods[k].opcode == 0) assert_int_equal(wsc_send_frame(c, 1, 0, "a", 1), 0);
        size_t len;
        unsigned char *buf = repeat_frame(floods[k].opcode, floods[k].fin, "a", 20000, &len);
        /* The server stops reading at the limit: the rest may never go out. */
        (void)wsc_fd_send_all(wsc_fd(c), buf, len, 2000);
        free(buf);
        int code = close_code_after_pongs(c, &pongs);
        if (code != 1008) fail_msg("%s: close code %d", floods[k].what, code);
        /* The burst, plus what refilled while the flood was read. */
        if (floods[k].opcode == 9 && (pongs < 90 || pongs > 150)) fail_msg("%d pongs", pongs);
        wsc_free(c);
        tsrv_close r;
        assert_int_equal(tsrv_wait_close(t, k, 3000, &r), 1);
        assert_int_equal(r.code, 1008);
        assert_int_equal(r.cause, WSG_CAUSE_RATE_LIMIT);
    }
    assert_int_equal(tsrv_messages(t), 1); /* the fragmented flood delivered nothing */
    /* One log line per flooded connection, naming the option. */
    assert_int_equal(tsrv_log_count(t, "rate_limited"), 3);
    char line[512];
    assert_int_equal(tsrv_log_get(t, "rate_limited", 0, line, sizeof line), 1);
    assert_non_null(strstr(line, "\"limit\":\"limits.frames_per_s\""));
    /* The well-behaved client never noticed. */
    assert_int_equal(wsc_send_text(ok, "still here"), 0);
    assert_int_equal(wsc_recv_message(ok, &m, 3000), 1);
    wsc_frame_free(&m);
    wsc_free(ok);
    tsrv_free(t);
}

static void forwarded_for_only_from_trusted_proxies(void **state) {
    (void)state;
    const char *trusted[] = {"server.trusted_proxies=127.0.0.0/8", "limits.max_connections_per_ip=1", NULL};
    tsrv *t = tsrv_start(trusted, 1);
    assert_non_null(t);
    const char *client1 = "X-Forwarded-For: 198.51.100.7, 203.0.113.5\r\n";
    wsc *a = open_ok(t, client1);
    assert_true(WAIT_UNTIL(tsrv_opens(t) == 1, 3000));
    wsg_conn_info *info;
    assert_int_equal(wsg_conn_info_get(t->srv, tsrv_last_open(t), &info), WSG_OK);
    const char *peer;
    wsg_conn_info_string(info, WSG_INFO_PEER_ADDR, &peer);
    assert_string_equal(peer, "203.0.113.5"); /* the rightmost untrusted hop */
    wsg_conn_info_free(info);
    /* The same client again is over its limit; a spoofed left entry does not help. */
    assert_int_equal(refused_status(t, "X-Forwarded-For: 10.9.9.9, 203.0.113.5\r\n"), 429);
    wsc *b = open_ok(t, "X-Forwarded-For: 203.0.113.6\r\n");
    wsc_free(a);
    wsc_free(b);
    tsrv_free(t);

    /* Without trusted proxies the header is ignored: every request is 127.0.0.1. */
    const char *untrusted[] = {"limits.max_connections_per_ip=1", NULL};
    t = tsrv_start(untrusted, 1);
    assert_non_null(t);
    a = open_ok(t, client1);
    assert_int_equal(refused_status(t, "X-Forwarded-For: 203.0.113.99\r\n"), 429);
    wsc_free(a);
    tsrv_free(t);
}

/* ---- per user, with an authenticator that takes the user from a header ---- */
static void user_from_header(wsg_server *s, wsg_auth_request *req, void *user) {
    (void)s, (void)user;
    const char *v;
    if (wsg_auth_request_header(req, "x-user", &v) == WSG_OK)
        wsg_auth_accept(req, v);
    else
        wsg_auth_refuse(req, 401, "no user");
}

static void per_user_connection_limit(void **state) {
    (void)state;
    wsg_config *cfg;
    wsg_config_new(&cfg);
    wsg_config_set_string(cfg, "listen.host", HOST);
    wsg_config_set_int(cfg, "listen.port", 0);
    wsg_config_set_string(cfg, "log.level", "off");
    wsg_config_set_string(cfg, "auth.mode", "callback");
    wsg_config_set_int(cfg, "limits.max_connections_per_user", 1);
    wsg_server *srv;
    assert_int_equal(wsg_server_new(&srv, cfg), WSG_OK);
    wsg_config_free(cfg);
    wsg_server_on_auth(srv, user_from_header, NULL, NULL);
    assert_int_equal(wsg_server_start(srv), WSG_OK);
    int port, status;
    wsg_server_port(srv, &port);
    wsc *a = wsc_connect(HOST, port, "/", "X-User: ann\r\n", 3000, &status);
    assert_non_null(a);
    assert_null(wsc_connect(HOST, port, "/", "X-User: ann\r\n", 3000, &status));
    assert_int_equal(status, 429);
    wsc *b = wsc_connect(HOST, port, "/", "X-User: ben\r\n", 3000, &status);
    assert_non_null(b);
    wsc_close(a, 1000, 3000);
    assert_true(WAIT_UNTIL(tu_conn_count(srv) == 1, 3000));
    a = wsc_connect(HOST, port, "/", "X-User: ann\r\n", 3000, &status);
    assert_non_null(a); /* released at close */
    wsc_free(a);
    wsc_free(b);
    wsg_server_free(srv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(per_ip_connection_limit),
        cmocka_unit_test(handshake_rate_per_ip),
        cmocka_unit_test(message_rate_close_and_drop),
        cmocka_unit_test(frame_rate_closes_floods),
        cmocka_unit_test(forwarded_for_only_from_trusted_proxies),
        cmocka_unit_test(per_user_connection_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
