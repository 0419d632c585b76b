/* Connections through the ABI: ids, info, user pointers, send, close and
 * broadcast from any thread, graceful stop, backpressure. Real clients on
 * loopback (tests/support/wsclient). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "testutil.h"
#include "wsclient.h"

#define HOST "127.0.0.1"

static wsc *connect_to(tsrv *t, const char *path, const char *headers) {
    int status = 0;
    wsc *c = wsc_connect(HOST, t->port, path, headers, 3000, &status);
    assert_non_null(c);
    assert_int_equal(status, 101);
    return c;
}

/* Waits for the server to report `n` opens and returns the newest id. */
static wsg_conn_id wait_open(tsrv *t, int n) {
    assert_true(WAIT_UNTIL(tsrv_opens(t) >= n, 3000));
    return tsrv_last_open(t);
}

static void stale_ids_are_not_found(void **state) {
    (void)state;
    tsrv *t = tsrv_start(NULL, 1);
    assert_non_null(t);
    const char msg[] = "x";
    /* Ids never handed out. */
    assert_int_equal(wsg_conn_send(t->srv, 0, WSG_MSG_TEXT, msg, 1), WSG_ENOTFOUND);
    assert_int_equal(wsg_conn_send(t->srv, 0x123456789ull, WSG_MSG_TEXT, msg, 1), WSG_ENOTFOUND);
    assert_non_null(strstr(wsg_last_error(), "no open connection"));
    assert_int_equal(wsg_conn_close(t->srv, 77, 1000, NULL), WSG_ENOTFOUND);

    wsc *c = connect_to(t, "/", NULL);
    wsg_conn_id id = wait_open(t, 1);
    assert_int_not_equal(id, 0);
    assert_int_equal(wsg_conn_send(t->srv, id, WSG_MSG_TEXT, msg, 1), WSG_OK);
    assert_int_equal(wsc_close(c, 1000, 3000), 1000);
    assert_true(WAIT_UNTIL(tsrv_closes(t) == 1, 3000));

    /* The id is stale now, for every call that takes one. */
    void *user = (void *)1;
    wsg_conn_info *info = (wsg_conn_info *)1;
    assert_int_equal(wsg_conn_send(t->srv, id, WSG_MSG_TEXT, msg, 1), WSG_ENOTFOUND);
    assert_int_equal(wsg_conn_close(t->srv, id, 1000, "bye"), WSG_ENOTFOUND);
    assert_int_equal(wsg_conn_set_user(t->srv, id, &user), WSG_ENOTFOUND);
    assert_int_equal(wsg_conn_get_user(t->srv, id, &user), WSG_ENOTFOUND);
    assert_int_equal(wsg_conn_info_get(t->srv, id, &info), WSG_ENOTFOUND);
    assert_null(info);

    /* A new connection in the same slot gets a different id; the old stays stale. */
    wsc *c2 = connect_to(t, "/", NULL);
    wsg_conn_id id2 = wait_open(t, 2);
    assert_true(id2 != id);
    assert_int_equal(wsg_conn_send(t->srv, id, WSG_MSG_TEXT, msg, 1), WSG_ENOTFOUND);
    assert_int_equal(wsg_conn_send(t->srv, id2, WSG_MSG_TEXT, msg, 1), WSG_OK);
    wsc_frame f;
    assert_int_equal(wsc_recv_message(c2, &f, 3000), 1);
    assert_int_equal(f.len, 1);
    wsc_frame_free(&f);
    wsc_free(c2);
    assert_int_equal(tsrv_free(t), 0);
}

static void bad_arguments_are_refused(void **state) {
    (void)state;
    tsrv *t = tsrv_start(NULL, 0);
    assert_non_null(t);
    wsc *c = connect_to(t, "/", NULL);
    wsg_conn_id id = wait_open(t, 1);
    assert_int_equal(wsg_conn_send(t->srv, id, (wsg_msg_type)7, "a", 1), WSG_EINVAL);
    assert_int_equal(wsg_conn_send(t->srv, id, WSG_MSG_TEXT, NULL, 3), WSG_EINVAL);
    assert_int_equal(wsg_conn_send(t->srv, id, WSG_MSG_TEXT, NULL, 0), WSG_OK); /* empty message */
    assert_int_equal(wsg_conn_send(NULL, id, WSG_MSG_TEXT, "a", 1), WSG_EINVAL);
    assert_int_equal(wsg_conn_close(t->srv, id, 1005, NULL), WSG_EINVAL);
    assert_non_null(strstr(wsg_last_error(), "1005"));
    assert_int_equal(wsg_conn_close(t->srv, id, 1006, NULL), WSG_EINVAL);
    assert_int_equal(wsg_conn_close(t->srv, id, 999, NULL), WSG_EINVAL);
    assert_int_equal(wsg_conn_close(t->srv, id, 5000, NULL), WSG_EINVAL);
    char longreason[200];
    memset(longreason, 'r', sizeof longreason - 1);
    longreason[sizeof longreason - 1] = 0;
    assert_int_equal(wsg_conn_close(t->srv, id, 1000, longreason), WSG_EINVAL);
    assert_int_equal(wsg_conn_close(t->srv, id, 1000, "\xff\xfe"), WSG_EINVAL);
    assert_int_equal(wsg_server_broadcast(t->srv, (wsg_msg_type)0, "a", 1), WSG_EINVAL);
    assert_int_equal(wsg_server_conn_ids(t->srv, NULL, 5, &(size_t){0}), WSG_EINVAL);
    assert_int_equal(wsg_conn_get_user(t->srv, id, NULL), WSG_EINVAL);
    /* None of these closed the connection: the empty message arrives. */
    wsc_frame f;
    assert_int_equal(wsc_recv_message(c, &f, 3000), 1);
    assert_int_equal(f.opcode, 1);
    assert_int_equal(f.len, 0);
    wsc_frame_free(&f);
    assert_int_equal(tsrv_opens(t), 1);
    assert_int_equal(tsrv_closes(t), 0);
    wsc_free(c);
    tsrv_free(t);
}

static void info_reports_request_and_counters(void **state) {
    (void)state;
    const char *settings[] = {"server.subprotocols=chat.v1,chat.v2",
                              "security.allowed_origins=https://app.example.com", NULL};
    tsrv *t = tsrv_start(settings, 1);
    assert_non_null(t);
    int64_t before = 0;
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        before = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
    wsc *c = connect_to(t, "/room/7?a=1&b=two",
                        "Origin: https://app.example.com\r\n"
                        "Sec-WebSocket-Protocol: other, chat.v2\r\n");
    wsg_conn_id id = wait_open(t, 1);
    assert_int_equal(wsc_send_text(c, "hello"), 0);
    assert_int_equal(wsc_send_binary(c, "\x01\x02\x03", 3), 0);
    wsc_frame f;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(wsc_recv_message(c, &f, 3000), 1);
        wsc_frame_free(&f);
    }
    struct sockaddr_in local;
    socklen_t sl = sizeof local;
    assert_int_equal(getsockname(wsc_fd(c), (struct sockaddr *)&local, &sl), 0);

    wsg_conn_info *info = NULL;
    assert_int_equal(wsg_conn_info_get(t->srv, id, &info), WSG_OK);
    const char *s;
    int64_t v;
    assert_int_equal(wsg_conn_info_string(info, WSG_INFO_PEER_ADDR, &s), WSG_OK);
    assert_string_equal(s, "127.0.0.1");
    assert_int_equal(wsg_conn_info_int(info, WSG_INFO_PEER_PORT, &v), WSG_OK);
    assert_int_equal(v, ntohs(local.sin_port));
    assert_int_equal(wsg_conn_info_string(info, WSG_INFO_PATH, &s), WSG_OK);
    assert_string_equal(s, "/room/7");
    assert_int_equal(wsg_conn_info_string(info, WSG_INFO_QUERY, &s), WSG_OK);
    assert_string_equal(s, "a=1&b=two");
    assert_int_equal(wsg_conn_info_string(info, WSG_INFO_ORIGIN, &s), WSG_OK);
    assert_string_equal(s, "https://app.example.com");
    assert_int_equal(wsg_conn_info_string(info, WSG_INFO_SUBPROTOCOL, &s), WSG_OK);
    assert_string_equal(s, "chat.v2");
    assert_int_equal(wsg_conn_info_int(info, WSG_INFO_CONNECTED_AT_MS, &v), WSG_OK);
    assert_true(v >= before - 5 && v <= before + 5000);
    assert_int_equal(wsg_conn_info_int(info, WSG_INFO_DURATION_MS, &v), WSG_OK);
    assert_true(v >= 0 && v < 5000);
    assert_int_equal(wsg_conn_info_int(info, WSG_INFO_MESSAGES_IN, &v), WSG_OK);
    assert_int_equal(v, 2);
    assert_int_equal(wsg_conn_info_int(info, WSG_INFO_BYTES_IN, &v), WSG_OK);
    assert_int_equal(v, 8);
    assert_int_equal(wsg_conn_info_int(info, WSG_INFO_MESSAGES_OUT, &v), WSG_OK);
    assert_int_equal(v, 2);
    assert_int_equal(wsg_conn_info_int(info, WSG_INFO_BYTES_OUT, &v), WSG_OK);
    assert_int_equal(v, 8);
    assert_int_equal(wsg_conn_info_int(info, WSG_INFO_ID, &v), WSG_OK);
    assert_int_equal((wsg_conn_id)v, id);
    /* compression.enabled is off (and our client offers no extension). */
    v = -1;
    assert_int_equal(wsg_conn_info_int(info, WSG_INFO_COMPRESSION, &v), WSG_OK);
    assert_int_equal(v, 0);
    assert_int_equal(wsg_conn_info_string(info, WSG_INFO_COMPRESSION, &s), WSG_EINVAL);
    /* Wrong kinds of field. */
    assert_int_equal(wsg_conn_info_int(info, WSG_INFO_PATH, &v), WSG_EINVAL);
    assert_int_equal(wsg_conn_info_string(info, WSG_INFO_BYTES_IN, &s), WSG_EINVAL);
    assert_int_equal(wsg_conn_info_string(info, (wsg_info_key)999, &s), WSG_EINVAL);
    wsg_conn_info_free(info);
    wsg_conn_info_free(NULL);

    /* A request with no Origin, no subprotocol and no query. */
    wsc *c2 = connect_to(t, "/", NULL);
    wsg_conn_id id2 = wait_open(t, 2);
    assert_int_equal(wsg_conn_info_get(t->srv, id2, &info), WSG_OK);
    assert_int_equal(wsg_conn_info_string(info, WSG_INFO_ORIGIN, &s), WSG_OK);
    assert_string_equal(s, "");
    assert_int_equal(wsg_conn_info_string(info, WSG_INFO_QUERY, &s), WSG_OK);
    assert_string_equal(s, "");
    assert_int_equal(wsg_conn_info_string(info, WSG_INFO_SUBPROTOCOL, &s), WSG_OK);
    assert_string_equal(s, "");
    wsg_conn_info_free(info);
    wsc_free(c2);
    wsc_free(c);
    tsrv_free(t);
}

/* ---- user pointer visible in on_close ---- */
struct user_probe {
    atomic_int seen_in_close;
    int marker;
};

static void probe_close(wsg_server *s, wsg_conn_id id, int code, const char *reason, size_t rl,
                        wsg_close_cause cause, void *user) {
    (void)code, (void)reason, (void)rl, (void)cause;
    struct user_probe *p = user;
    void *u = NULL;
    if (wsg_conn_get_user(s, id, &u) == WSG_OK && u == &p->marker) atomic_fetch_add(&p->seen_in_close, 1);
}

static void user_pointer_round_trip(void **state) {
    (void)state;
    struct user_probe probe = {0, 42};
    wsg_config *cfg;
    assert_int_equal(wsg_config_new(&cfg), WSG_OK);
    assert_int_equal(wsg_config_set_from_string(cfg, "listen.host=127.0.0.1"), WSG_OK);
    assert_int_equal(wsg_config_set_from_string(cfg, "listen.port=0"), WSG_OK);
    assert_int_equal(wsg_config_set_from_string(cfg, "log.level=off"), WSG_OK);
    wsg_server *srv;
    assert_int_equal(wsg_server_new(&srv, cfg), WSG_OK);
    wsg_config_free(cfg);
    assert_int_equal(wsg_server_on_close(srv, probe_close, &probe, NULL), WSG_OK);
    assert_int_equal(wsg_server_start(srv), WSG_OK);
    int port;
    assert_int_equal(wsg_server_port(srv, &port), WSG_OK);
    wsc *c = wsc_connect(HOST, port, "/", NULL, 3000, NULL);
    assert_non_null(c);
    assert_true(WAIT_UNTIL(tu_conn_count(srv) == 1, 3000));
    wsg_conn_id id;
    size_t n;
    assert_int_equal(wsg_server_conn_ids(srv, &id, 1, &n), WSG_OK);
    assert_int_equal(n, 1);
    void *u = (void *)1;
    assert_int_equal(wsg_conn_get_user(srv, id, &u), WSG_OK);
    assert_null(u);
    assert_int_equal(wsg_conn_set_user(srv, id, &probe.marker), WSG_OK);
    assert_int_equal(wsg_conn_get_user(srv, id, &u), WSG_OK);
    assert_ptr_equal(u, &probe.marker);
    wsc_close(c, 1000, 3000);
    assert_true(WAIT_UNTIL(atomic_load(&probe.seen_in_close) == 1, 3000));
    wsg_server_free(srv);
}

static void conn_ids_snapshot(void **state) {
    (void)state;
    tsrv *t = tsrv_start(NULL, 0);
    assert_non_null(t);
    wsc *cs[5];
    for (int i = 0; i < 5; i++) cs[i] = connect_to(t, "/", NULL);
    assert_true(WAIT_UNTIL(tu_conn_count(t->srv) == 5, 3000));
    size_t count = 0;
    assert_int_equal(wsg_server_conn_ids(t->srv, NULL, 0, &count), WSG_OK);
    assert_int_equal(count, 5);
    wsg_conn_id ids[8] = {0};
    assert_int_equal(wsg_server_conn_ids(t->srv, ids, 3, &count), WSG_OK);
    assert_int_equal(count, 5); /* total, though only 3 fit */
    assert_int_equal(ids[3], 0);
    assert_int_equal(wsg_server_conn_ids(t->srv, ids, 8, &count), WSG_OK);
    assert_int_equal(count, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_not_equal(ids[i], 0);
        for (int j = 0; j < i; j++) assert_true(ids[i] != ids[j]);
        assert_int_equal(wsg_conn_send(t->srv, ids[i], WSG_MSG_TEXT, "id", 2), WSG_OK);
    }
    for (int i = 0; i < 5; i++) wsc_free(cs[i]);
    assert_true(WAIT_UNTIL(tu_conn_count(t->srv) == 0, 3000));
    assert_int_equal(wsg_server_conn_ids(t->srv, ids, 8, &count), WSG_OK);
    assert_int_equal(count, 0);
    tsrv_free(t);
}

/* ---- close from the API ---- */
struct close_args {
    tsrv *t;
    wsg_conn_id id;
    wsg_status st;
};

static void *close_from_thread(void *arg) {
    struct close_args *a = arg;
    for (int i = 0; i < 100; i++) {
        char buf[16];
        int n = snprintf(buf, sizeof buf, "m%d", i);
        if (wsg_conn_send(a->t->srv, a->id, WSG_MSG_TEXT, buf, (size_t)n) != WSG_OK) {
            a->st = WSG_EINTERNAL;
            return NULL;
        }
    }
    a->st = wsg_conn_close(a->t->srv, a->id, 4001, "bye now");
    return NULL;
}

static void close_goes_out_after_queued_messages(void **state) {
    (void)state;
    tsrv *t = tsrv_start(NULL, 0);
    assert_non_null(t);
    wsc *c = connect_to(t, "/", NULL);
    struct close_args a = {t, wait_open(t, 1), WSG_OK};
    pthread_t th;
    pthread_create(&th, NULL, close_from_thread, &a);
    pthread_join(th, NULL);
    assert_int_equal(a.st, WSG_OK);
    /* Closing twice, or sending after the close, is refused at once. */
    assert_int_equal(wsg_conn_close(t->srv, a.id, 1000, NULL), WSG_ECLOSED);
    assert_int_equal(wsg_conn_send(t->srv, a.id, WSG_MSG_TEXT, "late", 4), WSG_ECLOSED);
    for (int i = 0; i < 100; i++) {
        wsc_frame f;
        char want[16];
        snprintf(want, sizeof want, "m%d", i);
        assert_int_equal(wsc_recv_message(c, &f, 3000), 1);
        assert_int_equal(f.opcode, 1);
        assert_string_equal((char *)f.data, want);
        wsc_frame_free(&f);
    }
    wsc_frame f;
    assert_int_equal(wsc_recv_message(c, &f, 3000), 1);
    assert_int_equal(f.opcode, 8);
    assert_int_equal(f.close_code, 4001);
    assert_int_equal(f.len, 2 + 7);
    assert_memory_equal(f.data + 2, "bye now", 7);
    wsc_frame_free(&f);
    assert_int_equal(wsc_send_close(c, 4001, NULL), 0);
    assert_int_equal(wsc_wait_closed(c, 3000, 0, NULL), 1);
    tsrv_close r;
    assert_int_equal(tsrv_wait_close(t, 0, 3000, &r), 1);
    assert_int_equal(r.id, a.id);
    assert_int_equal(r.code, 4001);
    assert_int_equal(r.cause, WSG_CAUSE_APP);
    assert_string_equal(r.reason, "bye now");
    wsc_free(c);
    assert_int_equal(tsrv_free(t), 0);
}

static void peer_close_is_reported(void **state) {
    (void)state;
    tsrv *t = tsrv_start(NULL, 0);
    assert_non_null(t);
    wsc *c = connect_to(t, "/", NULL);
    wsg_conn_id id = wait_open(t, 1);
    assert_int_equal(wsc_send_close(c, 4123, "client done"), 0);
    int code = 0;
    assert_int_equal(wsc_wait_closed(c, 3000, 0, &code), 1);
    assert_int_equal(code, 4123); /* the server echoes the client's close */
    tsrv_close r;
    assert_int_equal(tsrv_wait_close(t, 0, 3000, &r), 1);
    assert_int_equal(r.id, id);
    assert_int_equal(r.code, 4123);
    assert_int_equal(r.cause, WSG_CAUSE_PEER);
    assert_string_equal(r.reason, "client done");
    wsc_free(c);

    /* A close frame without a code is reported as 1005. */
    c = connect_to(t, "/", NULL);
    id = wait_open(t, 2);
    assert_int_equal(wsc_send_close(c, -1, NULL), 0);
    assert_int_equal(wsc_wait_closed(c, 3000, 0, NULL), 1);
    assert_int_equal(tsrv_wait_close(t, 1, 3000, &r), 1);
    assert_int_equal(r.id, id);
    assert_int_equal(r.code, 1005);
    assert_int_equal(r.cause, WSG_CAUSE_PEER);
    wsc_free(c);
    assert_int_equal(tsrv_free(t), 0);
}

/* ---- broadcast ---- */
#define BCAST_CLIENTS 20
#define BCAST_MSGS 200

static void broadcast_reaches_everyone_in_order(void **state) {
    (void)state;
    tsrv *t = tsrv_start(NULL, 0);
    assert_non_null(t);
    wsc *cs[BCAST_CLIENTS];
    for (int i = 0; i < BCAST_CLIENTS; i++) cs[i] = connect_to(t, "/", NULL);
    assert_true(WAIT_UNTIL(tu_conn_count(t->srv) == BCAST_CLIENTS, 3000));
    for (int m = 0; m < BCAST_MSGS; m++) {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "b%d", m);
        assert_int_equal(wsg_server_broadcast(t->srv, m % 2 ? WSG_MSG_BINARY : WSG_MSG_TEXT, buf, (size_t)n), WSG_OK);
    }
    for (int i = 0; i < BCAST_CLIENTS; i++) {
        for (int m = 0; m < BCAST_MSGS; m++) {
            wsc_frame f;
            char want[32];
            snprintf(want, sizeof want, "b%d", m);
            assert_int_equal(wsc_recv_message(cs[i], &f, 3000), 1);
            assert_int_equal(f.opcode, m % 2 ? 2 : 1);
            assert_string_equal((char *)f.data, want);
            wsc_frame_free(&f);
        }
        wsc_free(cs[i]);
    }
    tsrv_free(t);
}

/* A broadcast from inside a callback runs on the service thread. */
static void broadcast_on_message(wsg_server *s, wsg_conn_id id, wsg_msg_type type, const void *data,
                                 size_t len, void *user) {
    (void)id;
    atomic_int *st = user;
    atomic_store(st, wsg_server_broadcast(s, type, data, len));
}

static void broadcast_from_callback(void **state) {
    (void)state;
    atomic_int st = -1;
    wsg_config *cfg;
    wsg_config_new(&cfg);
    wsg_config_set_string(cfg, "listen.host", "127.0.0.1");
    wsg_config_set_int(cfg, "listen.port", 0);
    wsg_config_set_string(cfg, "log.level", "off");
    wsg_server *srv;
    assert_int_equal(wsg_server_new(&srv, cfg), WSG_OK);
    wsg_config_free(cfg);
    wsg_server_on_message(srv, broadcast_on_message, &st, NULL);
    assert_int_equal(wsg_server_start(srv), WSG_OK);
    int port;
    wsg_server_port(srv, &port);
    wsc *a = wsc_connect(HOST, port, "/", NULL, 3000, NULL), *b = wsc_connect(HOST, port, "/", NULL, 3000, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(WAIT_UNTIL(tu_conn_count(srv) == 2, 3000));
    assert_int_equal(wsc_send_text(a, "to all"), 0);
    wsc_frame f;
    assert_int_equal(wsc_recv_message(a, &f, 3000), 1);
    assert_string_equal((char *)f.data, "to all");
    wsc_frame_free(&f);
    assert_int_equal(wsc_recv_message(b, &f, 3000), 1);
    assert_string_equal((char *)f.data, "to all");
    wsc_frame_free(&f);
    assert_int_equal(atomic_load(&st), WSG_OK);
    wsc_free(a);
    wsc_free(b);
    wsg_server_free(srv);
}

/* ---- many threads sending and closing while clients come and go ---- */
struct churn {
    tsrv *t;
    atomic_int stop;
    atomic_int bad_status;
    atomic_long sends_ok;
    atomic_long received;
};

static void *sender(void *arg) {
    struct churn *ch = arg;
    wsg_conn_id ids[256];
    unsigned seed = (unsigned)(uintptr_t)&ids;
    while (!atomic_load(&ch->stop)) {
        size_t n = 0;
        if (wsg_server_conn_ids(ch->t->srv, ids, 256, &n) != WSG_OK) atomic_fetch_add(&ch->bad_status, 1);
        if (n > 256) n = 256;
        for (size_t i = 0; i < n; i++) {
            wsg_status st;
            if (rand_r(&seed) % 50 == 0)
                st = wsg_conn_close(ch->t->srv, ids[i], 1000, "churn");
            else
                st = wsg_conn_send(ch->t->srv, ids[i], WSG_MSG_TEXT, "payload", 7);
            if (st == WSG_OK)
                atomic_fetch_add(&ch->sends_ok, 1);
            else if (st != WSG_ENOTFOUND && st != WSG_ECLOSED)
                atomic_fetch_add(&ch->bad_status, 1);
        }
        /* Stale ids are expected between the snapshot and the call. */
        wsg_status st = wsg_conn_send(ch->t->srv, (wsg_conn_id)rand_r(&seed) << 32 | 5, WSG_MSG_TEXT, "x", 1);
        if (st != WSG_ENOTFOUND && st != WSG_OK) atomic_fetch_add(&ch->bad_status, 1);
        tu_sleep_ms(1);
    }
    return NULL;
}

static void *client_churn(void *arg) {
    struct churn *ch = arg;
    unsigned seed = (unsigned)(uintptr_t)&seed;
    while (!atomic_load(&ch->stop)) {
        wsc *c = wsc_connect(HOST, ch->t->port, "/", NULL, 3000, NULL);
        if (!c) continue;
        int reads = 1 + rand_r(&seed) % 20;
        for (int i = 0; i < reads; i++) {
            wsc_frame f;
            int r = wsc_recv_message(c, &f, 50);
            if (r == 1) {
                atomic_fetch_add(&ch->received, 1);
                int closing = f.opcode == 8;
                wsc_frame_free(&f);
                if (closing) break;
            } else if (r < 0) {
                break;
            }
        }
        switch (rand_r(&seed) % 3) {
        case 0: wsc_close(c, 1000, 1000); break;
        case 1: wsc_abort(c); break;
        default: wsc_free(c); break;
        }
    }
    return NULL;
}

static void threads_send_and_close_while_clients_churn(void **state) {
    (void)state;
    int fds_before = tu_open_fds();
    tsrv *t = tsrv_start(NULL, 1);
    assert_non_null(t);
    struct churn ch = {.t = t};
    pthread_t senders[4], clients[4];
    for (int i = 0; i < 4; i++) {
        pthread_create(&senders[i], NULL, sender, &ch);
        pthread_create(&clients[i], NULL, client_churn, &ch);
    }
    tu_sleep_ms(2500);
    atomic_store(&ch.stop, 1);
    for (int i = 0; i < 4; i++) {
        pthread_join(senders[i], NULL);
        pthread_join(clients[i], NULL);
    }
    assert_int_equal(atomic_load(&ch.bad_status), 0);
    assert_true(atomic_load(&ch.sends_ok) > 100);
    assert_true(atomic_load(&ch.received) > 50);
    /* Every connection that opened was reported closed exactly once. */
    assert_true(WAIT_UNTIL(tu_conn_count(t->srv) == 0, 8000));
    assert_true(WAIT_UNTIL(tsrv_opens(t) == tsrv_closes(t), 3000));
    assert_true(tsrv_opens(t) > 20);
    assert_int_equal(tsrv_free(t), 0);
    assert_int_equal(tu_open_fds(), fds_before);
}

/* ---- graceful stop ---- */
static void stop_sends_going_away_to_everyone(void **state) {
    (void)state;
    /* close_wait longer than the shutdown timeout: the shutdown timeout decides. */
    const char *settings[] = {"server.shutdown_timeout_ms=3000", "heartbeat.close_wait_ms=8000", NULL};
    tsrv *t = tsrv_start(settings, 0);
    assert_non_null(t);
    wsc *cs[10];
    for (int i = 0; i < 10; i++) cs[i] = connect_to(t, "/", NULL);
    assert_true(WAIT_UNTIL(tu_conn_count(t->srv) == 10, 3000));
    /* Queue a message to everyone right before the stop: it must arrive first. */
    assert_int_equal(wsg_server_broadcast(t->srv, WSG_MSG_TEXT, "last words", 10), WSG_OK);
    int64_t t0 = tu_now_ms();
    /* Clients answer the close from their own threads while stop() waits:
       here we answer after stop() returns, so read what was sent. */
    assert_int_equal(wsg_server_stop(t->srv), WSG_OK);
    int64_t took = tu_now_ms() - t0;
    for (int i = 0; i < 10; i++) {
        wsc_frame f;
        assert_int_equal(wsc_recv_message(cs[i], &f, 3000), 1);
        assert_string_equal((char *)f.data, "last words");
        wsc_frame_free(&f);
        assert_int_equal(wsc_recv_message(cs[i], &f, 3000), 1);
        assert_int_equal(f.opcode, 8);
        assert_int_equal(f.close_code, 1001);
        assert_memory_equal(f.data + 2, "going away", 10);
        wsc_frame_free(&f);
        assert_int_equal(wsc_wait_closed(cs[i], 3000, 0, NULL), 1);
        wsc_free(cs[i]);
    }
    /* Nobody answered the close frames: stop waited for the timeout, not forever. */
    assert_true(took >= 2900 && took < 6000);
    assert_int_equal(tsrv_closes(t), 10);
    for (int i = 0; i < 10; i++) {
        tsrv_close r;
        assert_int_equal(tsrv_wait_close(t, i, 0, &r), 1);
        assert_int_equal(r.code, 1001);
        assert_int_equal(r.cause, WSG_CAUSE_SHUTDOWN);
    }
    assert_int_equal(tsrv_free(t), 0);
}

struct answering {
    wsc *c;
    int code;
};

static void *answer_close(void *arg) {
    struct answering *a = arg;
    a->code = 0;
    wsc_wait_closed(a->c, 5000, 1, &a->code);
    return NULL;
}

static void stop_is_quick_when_clients_answer(void **state) {
    (void)state;
    const char *settings[] = {"server.shutdown_timeout_ms=5000", NULL};
    tsrv *t = tsrv_start(settings, 0);
    assert_non_null(t);
    struct answering a[5];
    pthread_t th[5];
    for (int i = 0; i < 5; i++) {
        a[i].c = connect_to(t, "/", NULL);
        pthread_create(&th[i], NULL, answer_close, &a[i]);
    }
    assert_true(WAIT_UNTIL(tu_conn_count(t->srv) == 5, 3000));
    int64_t t0 = tu_now_ms();
    assert_int_equal(wsg_server_stop(t->srv), WSG_OK);
    assert_true(tu_now_ms() - t0 < 2000);
    for (int i = 0; i < 5; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(a[i].code, 1001);
        wsc_free(a[i].c);
    }
    assert_int_equal(tsrv_closes(t), 5);
    /* New connections are refused once stopped. */
    assert_null(wsc_connect(HOST, t->port, "/", NULL, 500, NULL));
    assert_int_equal(tsrv_free(t), 0);
}

/* ---- backpressure ---- */
/* The server's id for our client `c` (matched by its TCP port); 0 if none. */
static wsg_conn_id conn_id_of(tsrv *t, wsc *c) {
    wsg_conn_id ids[16];
    size_t n = 0;
    wsg_server_conn_ids(t->srv, ids, 16, &n);
    struct sockaddr_in local;
    socklen_t sl = sizeof local;
    getsockname(wsc_fd(c), (struct sockaddr *)&local, &sl);
    for (size_t i = 0; i < n && i < 16; i++) {
        wsg_conn_info *info;
        if (wsg_conn_info_get(t->srv, ids[i], &info) != WSG_OK) continue;
        int64_t port = 0;
        wsg_conn_info_int(info, WSG_INFO_PEER_PORT, &port);
        wsg_conn_info_free(info);
        if (port == ntohs(local.sin_port)) return ids[i];
    }
    return 0;
}

/* Sends 64 KiB messages to `id` until a send is refused (the connection is
 * closing) or `max` were sent, pausing `pause_ms` every `every` sends. */
static void send_until_refused(tsrv *t, wsg_conn_id id, int max, int every, int pause_ms) {
    static char chunk[65536];
    memset(chunk, 'z', sizeof chunk);
    wsg_status st = WSG_OK;
    for (int i = 0; i < max && st == WSG_OK; i++) {
        st = wsg_conn_send(t->srv, id, WSG_MSG_BINARY, chunk, sizeof chunk);
        if (i % every == 0) tu_sleep_ms(pause_ms);
    }
}

/* The first close recorded is `id`'s: a backpressure close, code 1013. */
static void expect_backpressure_close(tsrv *t, wsg_conn_id id) {
    tsrv_close r;
    assert_int_equal(tsrv_wait_close(t, 0, 15000, &r), 1);
    assert_int_equal(r.id, id);
    assert_int_equal(r.cause, WSG_CAUSE_BACKPRESSURE);
    assert_int_equal(r.code, 1013);
}

static void slow_reader_is_closed_with_1013(void **state) {
    (void)state;
    const char *settings[] = {"limits.max_queue_bytes=262144", NULL};
    tsrv *t = tsrv_start(settings, 0);
    assert_non_null(t);
    wsc *slow = connect_to(t, "/", NULL);
    wsc *fast = connect_to(t, "/", NULL);
    assert_true(WAIT_UNTIL(tu_conn_count(t->srv) == 2, 3000));
    /* Far more than kernel buffers plus the queue limit; the slow client never reads. */
    wsg_conn_id slow_id = conn_id_of(t, slow);
    assert_int_not_equal(slow_id, 0);
    send_until_refused(t, slow_id, 2000, 16, 1);
    expect_backpressure_close(t, slow_id);
    /* The other client never noticed. (on_close runs before the id leaves
     * the registry: the count drops just after the close is recorded.) */
    assert_true(WAIT_UNTIL(tu_conn_count(t->srv) == 1, 3000));
    assert_int_equal(wsc_send_text(fast, "still here"), 0);
    assert_true(WAIT_UNTIL(tsrv_messages(t) == 1, 3000));
    wsc_free(slow);
    wsc_free(fast);
    assert_int_equal(tsrv_free(t), 0);
}

/* With a queue limit well above what loopback socket buffers take (a few
 * MiB), the socket is full long before the queue passes the limit: the
 * backpressure close frame can then never be written, and the write
 * deadline ends the connection. It stays a backpressure close (1013).
 * The write deadline must leave the test time to fill the queue past the
 * limit once the socket is full (about 1.5 s under ThreadSanitizer). */
static void stalled_backpressure_close_keeps_its_cause(void **state) {
    (void)state;
    char write_wait[64];
    snprintf(write_wait, sizeof write_wait, "heartbeat.write_wait_ms=%d", 1000 * TU_SLOW_FACTOR);
    const char *settings[] = {"limits.max_queue_bytes=16777216", write_wait, NULL};
    tsrv *t = tsrv_start(settings, 0);
    assert_non_null(t);
    wsc *slow = connect_to(t, "/", NULL);
    assert_true(WAIT_UNTIL(tu_conn_count(t->srv) == 1, 3000));
    wsg_conn_id id = conn_id_of(t, slow);
    assert_int_not_equal(id, 0);
    send_until_refused(t, id, 2000, 4, 2);
    expect_backpressure_close(t, id);
    wsc_free(slow);
    assert_int_equal(tsrv_free(t), 0);
}

/* A message no queue could ever hold is refused at the call, with the
 * option named, instead of closing every recipient for backpressure. */
static void message_over_the_queue_limit_is_refused(void **state) {
    (void)state;
    const char *settings[] = {"limits.max_queue_bytes=4096", NULL};
    tsrv *t = tsrv_start(settings, 0);
    assert_non_null(t);
    wsc *c = connect_to(t, "/", NULL);
    assert_true(WAIT_UNTIL(tu_conn_count(t->srv) == 1, 3000));
    wsg_conn_id id = conn_id_of(t, c);
    static char big[4096];
    memset(big, 'b', sizeof big);
    /* 4096 bytes of payload need 4 bytes of header: over the limit. */
    assert_int_equal(wsg_conn_send(t->srv, id, WSG_MSG_BINARY, big, sizeof big), WSG_EINVAL);
    assert_non_null(strstr(wsg_last_error(), "limits.max_queue_bytes"));
    assert_int_equal(wsg_server_broadcast(t->srv, WSG_MSG_BINARY, big, sizeof big), WSG_EINVAL);
    assert_non_null(strstr(wsg_last_error(), "limits.max_queue_bytes"));
    /* 4092 + 4 fits exactly, and arrives. */
    assert_int_equal(wsg_conn_send(t->srv, id, WSG_MSG_BINARY, big, 4092), WSG_OK);
    wsc_frame f;
    assert_int_equal(wsc_recv_message(c, &f, 3000), 1);
    assert_int_equal(f.len, 4092);
    wsc_frame_free(&f);
    assert_int_equal(tsrv_closes(t), 0);
    wsc_free(c);
    assert_int_equal(tsrv_free(t), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(message_over_the_queue_limit_is_refused),
        cmocka_unit_test(stale_ids_are_not_found),
        cmocka_unit_test(bad_arguments_are_refused),
        cmocka_unit_test(info_reports_request_and_counters),
        cmocka_unit_test(user_pointer_round_trip),
        cmocka_unit_test(conn_ids_snapshot),
        cmocka_unit_test(close_goes_out_after_queued_messages),
        cmocka_unit_test(peer_close_is_reported),
        cmocka_unit_test(broadcast_reaches_everyone_in_order),
        cmocka_unit_test(broadcast_from_callback),
        cmocka_unit_test(threads_send_and_close_while_clients_churn),
        cmocka_unit_test(stop_sends_going_away_to_everyone),
        cmocka_unit_test(stop_is_quick_when_clients_answer),
        cmocka_unit_test(slow_reader_is_closed_with_1013),
        cmocka_unit_test(stalled_backpressure_close_keeps_its_cause),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
