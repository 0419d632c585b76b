/* Graceful drain: not ready at once, new upgrades get 503 with retry-after,
 * open connections closed with 1012 spread over the duration (the spread of
 * close times is measured), then the normal stop; wsg_server_request_stop
 * drains when server.drain_ms is set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "wsclient.h"

enum { CLIENTS = 200, DRAIN_MS = 2000 };

typedef struct {
    wsg_server *srv;
    int port;
    pthread_mutex_t mu;
    int64_t start_ms;
    int closes, bad_code, bad_cause;
    int64_t at[CLIENTS]; /* ms after start_ms of each close */
} drain_srv;

static void on_close(wsg_server *s, wsg_conn_id id, int code, const char *reason, size_t len, wsg_close_cause cause,
                     void *user) {
    (void)s, (void)id, (void)reason, (void)len;
    drain_srv *d = user;
    pthread_mutex_lock(&d->mu);
    if (d->closes < CLIENTS) d->at[d->closes] = tu_now_ms() - d->start_ms;
    d->closes++;
    if (code != 1012) d->bad_code++;
    if (cause != WSG_CAUSE_DRAIN) d->bad_cause++;
    pthread_mutex_unlock(&d->mu);
}

static drain_srv *start(const char *extra) {
    drain_srv *d = calloc(1, sizeof *d);
    assert_non_null(d);
    pthread_mutex_init(&d->mu, NULL);
    wsg_config *cfg;
    assert_int_equal(wsg_config_new(&cfg), WSG_OK);
    assert_int_equal(wsg_config_set_from_string(cfg, "listen.host=127.0.0.1"), WSG_OK);
    assert_int_equal(wsg_config_set_from_string(cfg, "listen.port=0"), WSG_OK);
    assert_int_equal(wsg_config_set_from_string(cfg, "log.level=error"), WSG_OK);
    if (extra) assert_int_equal(wsg_config_set_from_string(cfg, extra), WSG_OK);
    assert_int_equal(wsg_server_new(&d->srv, cfg), WSG_OK);
    wsg_config_free(cfg);
    assert_int_equal(wsg_server_on_close(d->srv, on_close, d, NULL), WSG_OK);
    assert_int_equal(wsg_server_start(d->srv), WSG_OK);
    assert_int_equal(wsg_server_port(d->srv, &d->port), WSG_OK);
    return d;
}

static void *drain_thread(void *arg) {
    drain_srv *d = arg;
    wsg_status st = wsg_server_drain(d->srv, DRAIN_MS);
    return (void *)(intptr_t)st;
}

/* Clients that answer the close handshake: each one's socket is looked at
 * without waiting, from one thread polling them all; a client is done once
 * the server's close frame arrived (answered) or its socket ended. */
static int closed_count(wsc **clients, int n, int *done, int *codes) {
    int count = 0;
    for (int i = 0; i < n; i++) {
        while (!done[i]) {
            wsc_frame f;
            int r = wsc_recv_frame(clients[i], &f, 0);
            if (r == 0) break;
            if (r < 0) {
                done[i] = 1;
                codes[i] = 1006;
                break;
            }
            if (f.opcode == 8) {
                done[i] = 1;
                codes[i] = f.close_code;
                wsc_send_close(clients[i], f.close_code, NULL);
            }
            wsc_frame_free(&f);
        }
        count += done[i];
    }
    return count;
}

static void drain_spreads_closes_over_the_duration(void **state) {
    (void)state;
    drain_srv *d = start(NULL);
    static wsc *clients[CLIENTS];
    static int done[CLIENTS], codes[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        clients[i] = wsc_connect("127.0.0.1", d->port, "/", NULL, 3000, NULL);
        assert_non_null(clients[i]);
        done[i] = 0;
    }
    assert_true(WAIT_UNTIL(tu_conn_count(d->srv) == CLIENTS, 5000));
    assert_int_equal(wsg_server_draining(d->srv), 0);
    int ready = 0;
    assert_int_equal(wsg_server_ready(d->srv, &ready), WSG_OK);
    assert_int_equal(ready, 1);

    d->start_ms = tu_now_ms();
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, drain_thread, d), 0);
    /* Not ready at once; a new upgrade is refused with 503 and retry-after. */
    assert_true(WAIT_UNTIL(wsg_server_draining(d->srv), 500));
    assert_int_equal(wsg_server_ready(d->srv, &ready), WSG_OK);
    assert_int_equal(ready, 0);
    int status = 0;
    char *head = NULL;
    wsc *late = wsc_connect_ex("127.0.0.1", d->port, "/", NULL, 2000, &status, &head);
    assert_null(late);
    assert_int_equal(status, 503);
    assert_non_null(head);
    for (char *p = head; *p; p++) *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
    assert_non_null(strstr(head, "retry-after:"));
    free(head);

    /* Every client sees 1012, and answers. */
    assert_true(WAIT_UNTIL(closed_count(clients, CLIENTS, done, codes) == CLIENTS, DRAIN_MS + 3000));
    for (int i = 0; i < CLIENTS; i++) assert_int_equal(codes[i], 1012);
    void *ret;
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_int_equal((intptr_t)ret, WSG_OK);
    const int64_t stopped = tu_now_ms() - d->start_ms;

    pthread_mutex_lock(&d->mu);
    assert_int_equal(d->closes, CLIENTS);
    assert_int_equal(d->bad_code, 0);
    assert_int_equal(d->bad_cause, 0);
    /* The spread: in each quarter of the duration, about a quarter of the
     * closes (the pace is even per 100 ms tick, the order random); none
     * before the start, the last within a tick or two of the end. */
    int quarter[4] = {0, 0, 0, 0};
    int64_t first = INT64_MAX, last = 0;
    for (int i = 0; i < CLIENTS; i++) {
        int64_t at = d->at[i];
        if (at < first) first = at;
        if (at > last) last = at;
        int q = (int)(at * 4 / DRAIN_MS);
        quarter[q > 3 ? 3 : q]++;
    }
    pthread_mutex_unlock(&d->mu);
    printf("# %d closes over %d ms: first %lld ms, last %lld ms, per quarter %d %d %d %d; drain returned after "
           "%lld ms\n",
           CLIENTS, DRAIN_MS, (long long)first, (long long)last, quarter[0], quarter[1], quarter[2], quarter[3],
           (long long)stopped);
    for (int q = 0; q < 4; q++) {
        assert_true(quarter[q] >= CLIENTS / 4 - CLIENTS / 10);
        assert_true(quarter[q] <= CLIENTS / 4 + CLIENTS / 10);
    }
    assert_true(last >= DRAIN_MS * 3 / 4);
    assert_true(last <= DRAIN_MS + 1000);
    assert_true(stopped >= DRAIN_MS);
    /* Stopped: the port is released and draining stays 1 until it listens again. */
    int port;
    assert_int_equal(wsg_server_port(d->srv, &port), WSG_ESTATE);
    assert_int_equal(wsg_server_draining(d->srv), 1);
    for (int i = 0; i < CLIENTS; i++) wsc_free(clients[i]);
    assert_int_equal(wsg_server_start(d->srv), WSG_OK);
    assert_int_equal(wsg_server_draining(d->srv), 0);
    wsg_server_free(d->srv);
    free(d);
}

/* wsg_server_request_stop (the SIGTERM path) drains over server.drain_ms. */
static void request_stop_drains_with_drain_ms(void **state) {
    (void)state;
    drain_srv *d = start("server.drain_ms=600");
    wsc *c[4];
    int done[4] = {0}, codes[4];
    for (int i = 0; i < 4; i++) {
        c[i] = wsc_connect("127.0.0.1", d->port, "/", NULL, 3000, NULL);
        assert_non_null(c[i]);
    }
    assert_true(WAIT_UNTIL(tu_conn_count(d->srv) == 4, 3000));
    d->start_ms = tu_now_ms();
    assert_int_equal(wsg_server_request_stop(d->srv), WSG_OK);
    assert_true(WAIT_UNTIL(closed_count(c, 4, done, codes) == 4, 3000));
    /* Spread over the 600 ms, not at once. */
    assert_true(tu_now_ms() - d->start_ms >= 300);
    for (int i = 0; i < 4; i++) assert_int_equal(codes[i], 1012);
    assert_int_equal(wsg_server_stop(d->srv), WSG_OK);
    pthread_mutex_lock(&d->mu);
    assert_int_equal(d->bad_cause, 0);
    pthread_mutex_unlock(&d->mu);
    for (int i = 0; i < 4; i++) wsc_free(c[i]);
    wsg_server_free(d->srv);
    free(d);
}

static void drain_arguments(void **state) {
    (void)state;
    drain_srv *d = start(NULL);
    assert_int_equal(wsg_server_drain(NULL, 10), WSG_EINVAL);
    assert_int_equal(wsg_server_drain(d->srv, -1), WSG_EINVAL);
    assert_int_equal(wsg_server_drain(d->srv, 3600001), WSG_EINVAL);
    assert_non_null(strstr(wsg_last_error(), "3600000"));
    assert_int_equal(wsg_server_draining(NULL), 0);
    /* No connection: the drain ends at once. */
    int64_t t0 = tu_now_ms();
    assert_int_equal(wsg_server_drain(d->srv, 60000), WSG_OK);
    assert_true(tu_now_ms() - t0 < 2000);
    /* A stopped server drains as it stops: nothing to do. */
    assert_int_equal(wsg_server_drain(d->srv, 1000), WSG_OK);
    wsg_server_free(d->srv);
    free(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(drain_spreads_closes_over_the_duration),
        cmocka_unit_test(request_stop_drains_with_drain_ms),
        cmocka_unit_test(drain_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
