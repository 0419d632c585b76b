/* The heartbeat engine against real peers on loopback. Each dead-peer case
 * asserts the close cause and that on_close came no earlier than the deadline
 * and within the deadline plus one tick (plus SLACK for scheduling noise on a
 * busy 2-core machine and sanitizer builds), and that the registry and the
 * file descriptors are back where they started. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "wsclient.h"

#define HOST "127.0.0.1"
#define TICK 20
#define SLACK 60

typedef struct hb {
    wsg_server *srv;
    int port;
    int echo;
    pthread_mutex_t mu;
    wsg_conn_id ids[64];
    int64_t opened_at[64], closed_at[64];
    int code[64];
    wsg_close_cause cause[64];
    int n, closed;
} hb;

static int slot_of(hb *h, wsg_conn_id id) {
    for (int i = 0; i < h->n; i++)
        if (h->ids[i] == id) return i;
    return -1;
}

static void hb_open(wsg_server *s, wsg_conn_id id, void *user) {
    (void)s;
    hb *h = user;
    pthread_mutex_lock(&h->mu);
    if (h->n < 64) {
        h->ids[h->n] = id;
        h->opened_at[h->n] = tu_now_ms();
        h->n++;
    }
    pthread_mutex_unlock(&h->mu);
}

static void hb_message(wsg_server *s, wsg_conn_id id, wsg_msg_type type, const void *data,
                       size_t len, void *user) {
    hb *h = user;
    if (h->echo) wsg_conn_send(s, id, type, data, len);
}

static void hb_close(wsg_server *s, wsg_conn_id id, int code, const char *reason, size_t rl,
                     wsg_close_cause cause, void *user) {
    (void)s, (void)reason, (void)rl;
    hb *h = user;
    pthread_mutex_lock(&h->mu);
    int i = slot_of(h, id);
    if (i >= 0) {
        h->closed_at[i] = tu_now_ms();
        h->code[i] = code;
        h->cause[i] = cause;
        h->closed++;
    }
    pthread_mutex_unlock(&h->mu);
}

static hb *hb_start(const char *const *settings, int echo) {
    hb *h = calloc(1, sizeof *h);
    pthread_mutex_init(&h->mu, NULL);
    h->echo = echo;
    wsg_config *cfg;
    wsg_config_new(&cfg);
    wsg_config_set_string(cfg, "listen.host", HOST);
    wsg_config_set_int(cfg, "listen.port", 0);
    wsg_config_set_string(cfg, "log.level", "error");
    wsg_config_set_int(cfg, "heartbeat.tick_ms", TICK);
    for (int i = 0; settings && settings[i]; i++)
        if (wsg_config_set_from_string(cfg, settings[i]) != WSG_OK) {
            fprintf(stderr, "%s\n", wsg_last_error());
            return NULL;
        }
    if (wsg_server_new(&h->srv, cfg) != WSG_OK) {
        fprintf(stderr, "%s\n", wsg_last_error());
        return NULL;
    }
    wsg_config_free(cfg);
    wsg_server_on_open(h->srv, hb_open, h, NULL);
    wsg_server_on_message(h->srv, hb_message, h, NULL);
    wsg_server_on_close(h->srv, hb_close, h, NULL);
    if (wsg_server_start(h->srv) != WSG_OK) return NULL;
    wsg_server_port(h->srv, &h->port);
    return h;
}

static void hb_free(hb *h) {
    wsg_server_free(h->srv);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

static int hb_opened(hb *h) {
    pthread_mutex_lock(&h->mu);
    int n = h->n;
    pthread_mutex_unlock(&h->mu);
    return n;
}

static int hb_closed(hb *h) {
    pthread_mutex_lock(&h->mu);
    int n = h->closed;
    pthread_mutex_unlock(&h->mu);
    return n;
}

/* Waits for connection i's close and checks cause, code and that it came
 * in [from + deadline, from + deadline + TICK + SLACK]. */
static void expect_close(hb *h, int i, int64_t from, int64_t deadline, wsg_close_cause cause,
                         int code) {
    assert_true(WAIT_UNTIL(hb_closed(h) > i && h->closed_at[i] != 0, deadline + 5000));
    pthread_mutex_lock(&h->mu);
    int64_t at = h->closed_at[i] - from;
    wsg_close_cause got = h->cause[i];
    int got_code = h->code[i];
    pthread_mutex_unlock(&h->mu);
    if (at < deadline || at > deadline + TICK + SLACK)
        fail_msg("closed after %lld ms, deadline %lld ms (tick %d)", (long long)at,
                 (long long)deadline, TICK);
    assert_int_equal(got, cause);
    assert_int_equal(got_code, code);
}

static wsc *connect_quiet(hb *h) {
    wsc *c = wsc_connect(HOST, h->port, "/", NULL, 3000, NULL);
    assert_non_null(c);
    return c;
}

/* ---- a peer that completes the upgrade and never answers pings ---- */
static void silent_peer_times_out_on_pong_wait(void **state) {
    (void)state;
    int fds = tu_open_fds();
    const char *s[] = {"heartbeat.ping_interval_ms=200", "heartbeat.pong_wait_ms=600", NULL};
    hb *h = hb_start(s, 0);
    assert_non_null(h);
    wsc *c = connect_quiet(h);
    wsc_set_auto_pong(c, 0);
    assert_true(WAIT_UNTIL(hb_opened(h) == 1, 3000));
    expect_close(h, 0, h->opened_at[0], 600, WSG_CAUSE_PONG_TIMEOUT, 1001);
    /* The pings did go out, and the socket is dropped. */
    assert_int_equal(wsc_wait_closed(c, 3000, 0, NULL), 1);
    assert_true(wsc_pings_seen(c) >= 2);
    wsc_free(c);
    assert_int_equal(tu_conn_count(h->srv), 0);
    hb_free(h);
    assert_int_equal(tu_open_fds(), fds);
}

/* ---- a client process frozen with SIGSTOP ---- */
static void stopped_process_times_out(void **state) {
    (void)state;
    int fds = tu_open_fds();
    const char *s[] = {"heartbeat.ping_interval_ms=100", "heartbeat.pong_wait_ms=500", NULL};
    hb *h = hb_start(s, 0);
    assert_non_null(h);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The child: a live client that answers pings while it runs. */
        close(ready[0]);
        wsc *c = wsc_connect(HOST, h->port, "/", NULL, 3000, NULL);
        if (!c) _exit(1);
        if (write(ready[1], "r", 1) != 1) _exit(1);
        for (int i = 0; i < 1000; i++) {
            wsc_frame f;
            if (wsc_recv_frame(c, &f, 20) < 0) _exit(0);
            wsc_frame_free(&f);
        }
        _exit(0);
    }
    close(ready[1]);
    char b;
    assert_int_equal(read(ready[0], &b, 1), 1);
    close(ready[0]);
    assert_true(WAIT_UNTIL(hb_opened(h) == 1, 3000));
    tu_sleep_ms(350); /* a few pings answered */
    assert_int_equal(hb_closed(h), 0);
    int64_t stopped = tu_now_ms();
    kill(pid, SIGSTOP);
    /* The last pong came at most one ping interval (plus a tick) before the stop. */
    assert_true(WAIT_UNTIL(hb_closed(h) == 1, 5000));
    int64_t at = h->closed_at[0] - stopped;
    if (at < 500 - 100 - TICK || at > 500 + TICK + SLACK)
        fail_msg("closed %lld ms after SIGSTOP, pong wait 500 ms", (long long)at);
    assert_int_equal(h->cause[0], WSG_CAUSE_PONG_TIMEOUT);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    assert_int_equal(tu_conn_count(h->srv), 0);
    hb_free(h);
    assert_int_equal(tu_open_fds(), fds);
}

/* ---- a peer that answers pings stays ---- */
static void answering_peer_stays_connected(void **state) {
    (void)state;
    const char *s[] = {"heartbeat.ping_interval_ms=100", "heartbeat.pong_wait_ms=300",
                       "heartbeat.any_frame_is_alive=false", NULL};
    hb *h = hb_start(s, 0);
    assert_non_null(h);
    wsc *c = connect_quiet(h);
    assert_true(WAIT_UNTIL(hb_opened(h) == 1, 3000));
    /* Answer pings (auto-pong) for more than three pong waits. */
    int64_t end = tu_now_ms() + 1000;
    while (tu_now_ms() < end) {
        wsc_frame f;
        if (wsc_recv_frame(c, &f, 20) == 1) wsc_frame_free(&f);
    }
    assert_int_equal(hb_closed(h), 0);
    assert_true(wsc_pings_seen(c) >= 7);
    /* The round trip of the latest ping is part of the info. */
    wsg_conn_info *info;
    assert_int_equal(wsg_conn_info_get(h->srv, h->ids[0], &info), WSG_OK);
    int64_t rtt = -1;
    assert_int_equal(wsg_conn_info_int(info, WSG_INFO_RTT_US, &rtt), WSG_OK);
    assert_true(rtt >= 0 && rtt < 100000);
    wsg_conn_info_free(info);
    wsc_free(c);
    hb_free(h);
}

/* Data counts as proof of life when any_frame_is_alive (the default). */
static void data_keeps_a_non_ponging_peer_alive(void **state) {
    (void)state;
    const char *s[] = {"heartbeat.ping_interval_ms=100", "heartbeat.pong_wait_ms=300", NULL};
    hb *h = hb_start(s, 0);
    assert_non_null(h);
    wsc *c = connect_quiet(h);
    wsc_set_auto_pong(c, 0);
    int64_t last = 0;
    for (int i = 0; i < 10; i++) {
        last = tu_now_ms();
        assert_int_equal(wsc_send_text(c, "tick"), 0);
        tu_sleep_ms(100);
    }
    assert_int_equal(hb_closed(h), 0);
    /* Then silence: closed one pong wait after the last message. */
    assert_true(WAIT_UNTIL(hb_closed(h) == 1, 3000));
    assert_true(h->closed_at[0] - last >= 300);
    assert_true(h->closed_at[0] - last <= 300 + TICK + SLACK);
    assert_int_equal(h->cause[0], WSG_CAUSE_PONG_TIMEOUT);
    wsc_free(c);
    hb_free(h);
}

/* ---- a client that floods but never reads ---- */
static void flooding_reader_that_never_reads_hits_write_timeout(void **state) {
    (void)state;
    const char *s[] = {"heartbeat.write_wait_ms=400", "limits.max_queue_bytes=1073741824",
                       "limits.max_message_bytes=1048576", NULL};
    hb *h = hb_start(s, 1);
    assert_non_null(h);
    int fds = tu_open_fds(); /* with the server running */
    wsc *c = connect_quiet(h);
    assert_true(WAIT_UNTIL(hb_opened(h) == 1, 3000));
    static unsigned char chunk[65536];
    memset(chunk, 'f', sizeof chunk);
    int64_t start = tu_now_ms();
    /* 32 MiB echoed back into a client that reads nothing: the server's writes stall. */
    for (int i = 0; i < 512 && hb_closed(h) == 0; i++)
        if (wsc_send_binary(c, chunk, sizeof chunk) != 0) break;
    int64_t flood_end = tu_now_ms();
    assert_true(WAIT_UNTIL(hb_closed(h) == 1, 5000));
    int64_t at = h->closed_at[0];
    if (at < start + 400 || at > flood_end + 400 + TICK + SLACK)
        fail_msg("write timeout %lld ms after the flood began, %lld after it ended",
                 (long long)(at - start), (long long)(at - flood_end));
    assert_int_equal(h->cause[0], WSG_CAUSE_WRITE_TIMEOUT);
    assert_int_equal(h->code[0], 1006);
    wsc_free(c);
    assert_true(WAIT_UNTIL(tu_open_fds() == fds, 3000));
    assert_int_equal(tu_conn_count(h->srv), 0);
    hb_free(h);
}

/* ---- half an upgrade request, then nothing ---- */
static void slowloris_hits_handshake_timeout(void **state) {
    (void)state;
    const char *s[] = {"heartbeat.handshake_timeout_ms=500", NULL};
    hb *h = hb_start(s, 0);
    assert_non_null(h);
    int fds = tu_open_fds(); /* with the server running */
    const char *partial[] = {"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n", ""};
    for (int k = 0; k < 2; k++) {
        int64_t t0 = tu_now_ms();
        int fd = wsc_tcp_connect(HOST, h->port, 1000);
        assert_true(fd >= 0);
        if (*partial[k]) assert_int_equal(wsc_fd_send_all(fd, partial[k], strlen(partial[k]), 1000), 0);
        assert_int_equal(wsc_fd_wait_closed(fd, 3000), 1);
        int64_t at = tu_now_ms() - t0;
        close(fd);
        if (at < 500 - 5 || at > 500 + TICK + SLACK)
            fail_msg("dropped after %lld ms, handshake timeout 500 ms", (long long)at);
    }
    /* Never opened, so never reported closed. */
    assert_int_equal(hb_opened(h), 0);
    assert_int_equal(hb_closed(h), 0);
    /* A complete upgrade within the time is unaffected, and stays past it. */
    wsc *c = connect_quiet(h);
    tu_sleep_ms(700);
    assert_int_equal(wsc_send_text(c, "still here"), 0);
    assert_int_equal(hb_closed(h), 0);
    wsc_free(c);
    assert_true(WAIT_UNTIL(tu_open_fds() == fds, 3000));
    hb_free(h);
}

/* ---- idle timeout ---- */
static void idle_client_is_closed(void **state) {
    (void)state;
    const char *s[] = {"heartbeat.idle_timeout_ms=400", "heartbeat.ping_interval_ms=100",
                       "heartbeat.pong_wait_ms=300", NULL};
    hb *h = hb_start(s, 0);
    assert_non_null(h);
    wsc *idle = connect_quiet(h);
    assert_true(WAIT_UNTIL(hb_opened(h) == 1, 3000));
    /* It answers pings (auto-pong), but pongs are not data. */
    int code = 0;
    assert_int_equal(wsc_wait_closed(idle, 3000, 1, &code), 1);
    assert_int_equal(code, 1001);
    expect_close(h, 0, h->opened_at[0], 400, WSG_CAUSE_IDLE_TIMEOUT, 1001);
    wsc_free(idle);
    /* A client that talks stays. */
    wsc *chatty = connect_quiet(h);
    assert_true(WAIT_UNTIL(hb_opened(h) == 2, 3000));
    for (int i = 0; i < 10; i++) {
        assert_int_equal(wsc_send_text(chatty, "hi"), 0);
        wsc_frame f;
        while (wsc_recv_frame(chatty, &f, 100) == 1) wsc_frame_free(&f);
    }
    assert_int_equal(hb_closed(h), 1);
    wsc_free(chatty);
    hb_free(h);
}

/* ---- a peer that never answers our close frame ---- */
static void unanswered_close_hits_close_wait(void **state) {
    (void)state;
    const char *s[] = {"heartbeat.close_wait_ms=300", NULL};
    hb *h = hb_start(s, 0);
    assert_non_null(h);
    int fds = tu_open_fds(); /* with the server running */
    wsc *c = connect_quiet(h);
    assert_true(WAIT_UNTIL(hb_opened(h) == 1, 3000));
    int64_t t0 = tu_now_ms();
    assert_int_equal(wsg_conn_close(h->srv, h->ids[0], 4000, "bye"), WSG_OK);
    wsc_frame f;
    assert_int_equal(wsc_recv_frame(c, &f, 3000), 1); /* the close frame arrives; no answer */
    assert_int_equal(f.opcode, 8);
    assert_int_equal(f.close_code, 4000);
    wsc_frame_free(&f);
    expect_close(h, 0, t0, 300, WSG_CAUSE_CLOSE_TIMEOUT, 4000);
    assert_int_equal(wsc_wait_closed(c, 3000, 0, NULL), 1);
    wsc_free(c);
    assert_true(WAIT_UNTIL(tu_open_fds() == fds, 3000));
    hb_free(h);
}

/* ---- per-connection overrides ---- */
static void per_connection_override(void **state) {
    (void)state;
    const char *s[] = {"heartbeat.ping_interval_ms=100", "heartbeat.pong_wait_ms=400", NULL};
    hb *h = hb_start(s, 0);
    assert_non_null(h);
    wsc *a = connect_quiet(h), *b = connect_quiet(h);
    wsc_set_auto_pong(a, 0);
    wsc_set_auto_pong(b, 0);
    assert_true(WAIT_UNTIL(hb_opened(h) == 2, 3000));
    /* b is a "mobile client": a longer pong wait. */
    assert_int_equal(wsg_conn_set_timeout(h->srv, h->ids[1], "heartbeat.pong_wait_ms", 1200), WSG_OK);
    /* Bad keys and values change nothing. */
    assert_int_equal(wsg_conn_set_timeout(h->srv, h->ids[1], "heartbeat.tick_ms", 10), WSG_EINVAL);
    assert_int_equal(wsg_conn_set_timeout(h->srv, h->ids[1], "listen.port", 10), WSG_EINVAL);
    assert_int_equal(wsg_conn_set_timeout(h->srv, h->ids[1], "heartbeat.pong_wait_ms", -1), WSG_EINVAL);
    assert_int_equal(wsg_conn_set_timeout(h->srv, h->ids[1], NULL, 1), WSG_EINVAL);
    assert_int_equal(wsg_conn_set_timeout(h->srv, 12345, "heartbeat.pong_wait_ms", 1), WSG_ENOTFOUND);
    expect_close(h, 0, h->opened_at[0], 400, WSG_CAUSE_PONG_TIMEOUT, 1001);
    expect_close(h, 1, h->opened_at[1], 1200, WSG_CAUSE_PONG_TIMEOUT, 1001);
    wsc_free(a);
    wsc_free(b);
    hb_free(h);
}

/* ---- presets and cross-option checks ---- */
static void presets_and_validation(void **state) {
    (void)state;
    wsg_config *cfg;
    wsg_server *srv = NULL;
    wsg_config_new(&cfg);
    assert_int_equal(wsg_config_set_string(cfg, "heartbeat.preset", "lan"), WSG_EINVAL);
    /* A pong wait shorter than the ping interval would kill healthy peers. */
    assert_int_equal(wsg_config_set_int(cfg, "heartbeat.ping_interval_ms", 5000), WSG_OK);
    assert_int_equal(wsg_config_set_int(cfg, "heartbeat.pong_wait_ms", 4000), WSG_OK);
    assert_int_equal(wsg_server_new(&srv, cfg), WSG_EINVAL);
    assert_null(srv);
    assert_non_null(strstr(wsg_last_error(), "heartbeat.pong_wait_ms"));
    /* The game preset alone is consistent; an explicit value overrides it. */
    wsg_config_free(cfg);
    wsg_config_new(&cfg);
    assert_int_equal(wsg_config_set_string(cfg, "heartbeat.preset", "game"), WSG_OK);
    assert_int_equal(wsg_server_new(&srv, cfg), WSG_OK);
    wsg_server_free(srv);
    assert_int_equal(wsg_config_set_int(cfg, "heartbeat.pong_wait_ms", 900), WSG_OK); /* < game ping 1000 */
    assert_int_equal(wsg_server_new(&srv, cfg), WSG_EINVAL);
    wsg_config_free(cfg);

    /* Under the game preset a silent peer is dropped after 3 s. */
    const char *s[] = {"heartbeat.preset=game", NULL};
    hb *h = hb_start(s, 0);
    assert_non_null(h);
    wsc *c = connect_quiet(h);
    wsc_set_auto_pong(c, 0);
    assert_true(WAIT_UNTIL(hb_opened(h) == 1, 3000));
    expect_close(h, 0, h->opened_at[0], 3000, WSG_CAUSE_PONG_TIMEOUT, 1001);
    wsc_free(c);
    hb_free(h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(silent_peer_times_out_on_pong_wait),
        cmocka_unit_test(stopped_process_times_out),
        cmocka_unit_test(answering_peer_stays_connected),
        cmocka_unit_test(data_keeps_a_non_ponging_peer_alive),
        cmocka_unit_test(flooding_reader_that_never_reads_hits_write_timeout),
        cmocka_unit_test(slowloris_hits_handshake_timeout),
        cmocka_unit_test(idle_client_is_closed),
        cmocka_unit_test(unanswered_close_hits_close_wait),
        cmocka_unit_test(per_connection_override),
        cmocka_unit_test(presets_and_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
