/* Delivery policies and backpressure through the ABI, with real clients on
 * loopback that stop reading (tests/support/wsclient): for each queue policy
 * what arrives and in which order, what is dropped and counted, the log
 * events (once per episode), control frames still answered ahead of the
 * queued data, WSG_ECLOSED on every thread as soon as the server decides a
 * close, on_drain once per crossing from the high to the low-water mark,
 * and the per-connection policy override.
 *
 * How a queue is filled deterministically: the client stops reading (its
 * receive window stays small until it reads); the test sends 32 KiB messages one at a time
 * until the server's own queue holds something (WSG_INFO_QUEUED_BYTES > 0):
 * from then on the kernel takes nothing more, and every further message
 * stays in the queue, where the policy applies to it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "testutil.h"
#include "wsclient.h"

#define HOST "127.0.0.1"
#define FILLER 32768 /* payload of one filler message: 32,772 bytes framed */
#define TEXT 1000    /* payload of one numbered text message: 1,004 bytes framed */
#define TEXT_FRAMED 1004

/* ---- a server that records what these tests look at ---- */

typedef struct dsrv {
    wsg_server *srv;
    int port;
    pthread_mutex_t mu;
    /* guarded by mu */
    int opens, closes;
    wsg_conn_id last_open;
    int close_code;
    wsg_close_cause close_cause;
    int overflows, recoveries, backpressures;
    char overflow_json[512], recovered_json[512];
    int drains;
    size_t drain_queued;
    int send_on_drain; /* set before start: on_drain sends "drained" back */
    wsg_status drain_send;
} dsrv;

static void d_open(wsg_server *s, wsg_conn_id id, void *user) {
    (void)s;
    dsrv *d = user;
    pthread_mutex_lock(&d->mu);
    d->opens++;
    d->last_open = id;
    pthread_mutex_unlock(&d->mu);
}

static void d_close(wsg_server *s, wsg_conn_id id, int code, const char *reason, size_t rl,
                    wsg_close_cause cause, void *user) {
    (void)s, (void)id, (void)reason, (void)rl;
    dsrv *d = user;
    pthread_mutex_lock(&d->mu);
    d->closes++;
    d->close_code = code;
    d->close_cause = cause;
    pthread_mutex_unlock(&d->mu);
}

static void d_log(wsg_server *s, wsg_log_level level, const char *event, const char *json, size_t len,
                  void *user) {
    (void)s, (void)level;
    dsrv *d = user;
    pthread_mutex_lock(&d->mu);
    char *into = NULL;
    if (!strcmp(event, "queue_overflow")) {
        d->overflows++;
        into = d->overflow_json;
    } else if (!strcmp(event, "queue_recovered")) {
        d->recoveries++;
        into = d->recovered_json;
    } else if (!strcmp(event, "backpressure")) {
        d->backpressures++;
    }
    if (into) {
        size_t n = len < 511 ? len : 511;
        memcpy(into, json, n);
        into[n] = 0;
    }
    pthread_mutex_unlock(&d->mu);
}

/* Records the crossing; may send "drained" back (sending is allowed here). */
static void d_drain(wsg_server *s, wsg_conn_id id, size_t queued, void *user) {
    dsrv *d = user;
    wsg_status st = d->send_on_drain ? wsg_conn_send(s, id, WSG_MSG_TEXT, "drained", 7) : WSG_OK;
    pthread_mutex_lock(&d->mu);
    d->drains++;
    d->drain_queued = queued;
    d->drain_send = st;
    pthread_mutex_unlock(&d->mu);
}

static int get_locked(dsrv *d, const int *field) {
    pthread_mutex_lock(&d->mu);
    int v = *field;
    pthread_mutex_unlock(&d->mu);
    return v;
}
#define D_GET(d, field) get_locked((d), &(d)->field)

/* No pings (they would interleave with what is checked) and no write
 * deadline (a client that stops reading is kept), plus `settings`. */
static dsrv *dsrv_start(const char *const *settings, int send_on_drain) {
    dsrv *d = calloc(1, sizeof *d);
    assert_non_null(d);
    d->send_on_drain = send_on_drain;
    pthread_mutex_init(&d->mu, NULL);
    wsg_config *cfg;
    assert_int_equal(wsg_config_new(&cfg), WSG_OK);
    const char *base[] = {"listen.host=127.0.0.1", "listen.port=0", "log.level=info",
                          "heartbeat.ping_interval_ms=0", "heartbeat.write_wait_ms=0", NULL};
    for (int i = 0; base[i]; i++) assert_int_equal(wsg_config_set_from_string(cfg, base[i]), WSG_OK);
    for (int i = 0; settings && settings[i]; i++) {
        if (wsg_config_set_from_string(cfg, settings[i]) != WSG_OK) print_error("%s\n", wsg_last_error());
        assert_int_equal(wsg_config_set_from_string(cfg, settings[i]), WSG_OK);
    }
    assert_int_equal(wsg_server_new(&d->srv, cfg), WSG_OK);
    wsg_config_free(cfg);
    assert_int_equal(wsg_server_on_open(d->srv, d_open, d, NULL), WSG_OK);
    assert_int_equal(wsg_server_on_close(d->srv, d_close, d, NULL), WSG_OK);
    assert_int_equal(wsg_server_on_log(d->srv, d_log, d, NULL), WSG_OK);
    assert_int_equal(wsg_server_on_drain(d->srv, d_drain, d, NULL), WSG_OK);
    assert_int_equal(wsg_server_start(d->srv), WSG_OK);
    assert_int_equal(wsg_server_port(d->srv, &d->port), WSG_OK);
    return d;
}

static void dsrv_free(dsrv *d) {
    wsg_server_free(d->srv);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

/* A client that reads only when the test says so, and the server's id for it. */
static wsc *connect_client(dsrv *d, wsg_conn_id *id) {
    int before = D_GET(d, opens);
    wsc *c = wsc_connect(HOST, d->port, "/", NULL, 3000, NULL);
    assert_non_null(c);
    assert_true(WAIT_UNTIL(D_GET(d, opens) == before + 1, 3000));
    pthread_mutex_lock(&d->mu);
    *id = d->last_open;
    pthread_mutex_unlock(&d->mu);
    return c;
}

static int64_t info_int(dsrv *d, wsg_conn_id id, wsg_info_key key) {
    wsg_conn_info *info = NULL;
    if (wsg_conn_info_get(d->srv, id, &info) != WSG_OK) return -1;
    int64_t v = -1;
    if (wsg_conn_info_int(info, key, &v) != WSG_OK) v = -2;
    wsg_conn_info_free(info);
    return v;
}

/* Sends one filler, counted in *sent, and waits until the service thread
 * has queued it (and written what it could: the write follows in the same
 * event). */
static void send_filler(dsrv *d, wsg_conn_id id, int64_t *sent) {
    static char filler[FILLER];
    memset(filler, 'z', sizeof filler);
    int64_t out = info_int(d, id, WSG_INFO_MESSAGES_OUT);
    assert_int_equal(wsg_conn_send(d->srv, id, WSG_MSG_BINARY, filler, sizeof filler), WSG_OK);
    ++*sent;
    assert_true(WAIT_UNTIL(info_int(d, id, WSG_INFO_MESSAGES_OUT) > out, 5000));
    tu_sleep_ms(3);
}

/* Fillers until the server's queue holds one: the client's buffers and the
 * kernel's are full. Returns the bytes then queued. */
static int64_t fill_until_stuck(dsrv *d, wsg_conn_id id, int64_t *sent) {
    for (int i = 0; i < 4000; i++) {
        send_filler(d, id, sent);
        int64_t q = info_int(d, id, WSG_INFO_QUEUED_BYTES);
        if (q > 0) {
            /* Still there a moment later: nothing is being written. */
            tu_sleep_ms(30);
            assert_int_equal(info_int(d, id, WSG_INFO_QUEUED_BYTES), q);
            return q;
        }
    }
    fail_msg("the queue never filled");
    return 0;
}

/* Text message number i: "m007" then padding to TEXT bytes. */
static void numbered(int i, char *out) {
    memset(out, '.', TEXT);
    char head[8];
    snprintf(head, sizeof head, "m%03d", i);
    memcpy(out, head, 4);
}

static void send_numbered(dsrv *d, wsg_conn_id id, int from, int to) {
    char buf[TEXT];
    for (int i = from; i < to; i++) {
        numbered(i, buf);
        assert_int_equal(wsg_conn_send(d->srv, id, WSG_MSG_TEXT, buf, sizeof buf), WSG_OK);
    }
}

/* What the client read, in order. */
typedef struct seen {
    int fillers;        /* binary messages */
    int texts[256];     /* numbers of the numbered texts, in arrival order */
    int ntexts;
    int pong_at;        /* numbered texts seen before the pong arrived; -1: no pong */
    int fillers_at_pong;
    int close_code;     /* 0: no close frame */
} seen;

/* Reads until the numbered text `last` (>= 0), the text `until` (non-NULL)
 * or a close frame arrives; any other unnumbered text fails the test. */
static void read_until(wsc *c, int last, const char *until, seen *s) {
    memset(s, 0, sizeof *s);
    s->pong_at = -1;
    for (;;) {
        wsc_frame f;
        int r = wsc_recv_message(c, &f, 5000);
        if (r != 1) fail_msg("read ended (%d) before m%03d / '%s'", r, last, until ? until : "");
        int done = 0;
        if (f.opcode == 2) {
            s->fillers++;
        } else if (f.opcode == 10) {
            assert_int_equal(f.len, 5);
            assert_memory_equal(f.data, "hello", 5);
            assert_int_equal(s->pong_at, -1);
            s->pong_at = s->ntexts;
            s->fillers_at_pong = s->fillers;
        } else if (f.opcode == 8) {
            s->close_code = f.close_code;
            done = 1;
        } else if (f.opcode == 1 && f.len == TEXT && f.data[0] == 'm') {
            assert_true(s->ntexts < 256);
            int n = atoi((char *)f.data + 1);
            s->texts[s->ntexts++] = n;
            done = n == last;
        } else if (until && f.len == strlen(until) && !memcmp(f.data, until, f.len)) {
            done = 1;
        } else {
            fail_msg("unexpected message (opcode %d, %zu bytes: %.20s)", f.opcode, f.len, (char *)f.data);
        }
        wsc_frame_free(&f);
        if (done) break;
    }
}

/* The client pings while its queue is full. lws reads nothing from a
 * socket while it holds output the kernel did not take, so the server reads
 * the ping once the client reads again: its pong then goes out ahead of
 * every message still queued. */
static void ping_while_full(wsc *c) {
    assert_int_equal(wsc_send_frame(c, 9, 1, "hello", 5), 0);
}

/* After the texts that should arrive, "end" is next: nothing else was kept. */
static void expect_end(dsrv *d, wsg_conn_id id, wsc *c) {
    assert_int_equal(wsg_conn_send(d->srv, id, WSG_MSG_TEXT, "end", 3), WSG_OK);
    seen s;
    read_until(c, -1, "end", &s);
    assert_int_equal(s.fillers, 0);
    assert_int_equal(s.ntexts, 0);
}

/* A recorded log event's JSON contains `part`. */
static void expect_json(dsrv *d, const char *json, const char *part) {
    pthread_mutex_lock(&d->mu);
    int found = strstr(json, part) != NULL;
    if (!found) print_error("'%s' not in %s\n", part, json);
    pthread_mutex_unlock(&d->mu);
    assert_true(found);
}

/* ---- the policies ---- */

static void drop_newest_keeps_the_queue_and_drops_what_does_not_fit(void **state) {
    (void)state;
    /* The server's policy is close: this connection gets its own. */
    const char *settings[] = {"limits.max_queue_bytes=65536", NULL};
    dsrv *d = dsrv_start(settings, 0);
    wsg_conn_id id;
    wsc *c = connect_client(d, &id);
    assert_int_equal(info_int(d, id, WSG_INFO_QUEUE_POLICY), WSG_QUEUE_CLOSE);
    assert_int_equal(wsg_conn_set_queue_policy(d->srv, id, WSG_QUEUE_DROP_NEWEST), WSG_OK);
    assert_true(WAIT_UNTIL(info_int(d, id, WSG_INFO_QUEUE_POLICY) == WSG_QUEUE_DROP_NEWEST, 3000));

    int64_t dropped = 0;
    for (int episode = 1; episode <= 2; episode++) {
        int64_t sent = 0;
        int64_t q0 = fill_until_stuck(d, id, &sent);
        int fit = (int)((65536 - q0) / TEXT_FRAMED);
        assert_true(fit > 10 && fit < 100);
        int64_t out_before = info_int(d, id, WSG_INFO_MESSAGES_OUT);
        send_numbered(d, id, 0, 100);
        assert_true(WAIT_UNTIL(info_int(d, id, WSG_INFO_MESSAGES_OUT) == out_before + 100, 5000));
        dropped += 100 - fit;
        assert_int_equal(info_int(d, id, WSG_INFO_MESSAGES_DROPPED), dropped);
        assert_int_equal(info_int(d, id, WSG_INFO_QUEUED_BYTES), q0 + (int64_t)fit * TEXT_FRAMED);
        ping_while_full(c);
        /* One event for the whole episode, however many were dropped. */
        assert_int_equal(D_GET(d, overflows), episode);
        expect_json(d, d->overflow_json, "\"policy\":\"drop_newest\"");
        assert_int_equal(D_GET(d, recoveries), episode - 1);

        /* The client reads again: every filler, the pong ahead of every
         * queued text, the texts that fit in order, and nothing after them. */
        seen s;
        read_until(c, fit - 1, NULL, &s);
        assert_int_equal(s.fillers, sent);
        assert_int_equal(s.pong_at, 0);
        assert_int_equal(s.ntexts, fit);
        for (int i = 0; i < fit; i++) assert_int_equal(s.texts[i], i);
        expect_end(d, id, c);
        /* Back under the low-water mark: the episode ends, logged once with its count. */
        assert_true(WAIT_UNTIL(D_GET(d, recoveries) == episode, 3000));
        char want[32];
        snprintf(want, sizeof want, "\"dropped\":%d,", 100 - fit);
        expect_json(d, d->recovered_json, want);
        assert_int_equal(D_GET(d, overflows), episode);
        assert_true(WAIT_UNTIL(info_int(d, id, WSG_INFO_QUEUED_BYTES) == 0, 3000));
        /* The queue passed the high-water mark (half the limit by default)
         * and came back: one drain per episode. */
        assert_int_equal(D_GET(d, drains), episode);
    }
    assert_int_equal(D_GET(d, closes), 0);
    wsc_free(c);
    dsrv_free(d);
}

static void drop_oldest_drops_whole_messages_from_the_front(void **state) {
    (void)state;
    const char *settings[] = {"limits.max_queue_bytes=65536", "limits.queue_policy=drop_oldest", NULL};
    dsrv *d = dsrv_start(settings, 0);
    wsg_conn_id id;
    wsc *c = connect_client(d, &id);
    assert_int_equal(info_int(d, id, WSG_INFO_QUEUE_POLICY), WSG_QUEUE_DROP_OLDEST);
    int64_t sent = 0;
    fill_until_stuck(d, id, &sent);
    send_numbered(d, id, 0, 100);
    assert_true(WAIT_UNTIL(info_int(d, id, WSG_INFO_MESSAGES_OUT) == sent + 100, 5000));
    /* The queued filler went first, then the oldest texts: the newest that
     * fit are left. */
    int keep = 65536 / TEXT_FRAMED;
    assert_int_equal(info_int(d, id, WSG_INFO_MESSAGES_DROPPED), 1 + 100 - keep);
    assert_int_equal(info_int(d, id, WSG_INFO_QUEUED_BYTES), (int64_t)keep * TEXT_FRAMED);
    ping_while_full(c);
    assert_int_equal(D_GET(d, overflows), 1);
    expect_json(d, d->overflow_json, "\"policy\":\"drop_oldest\"");

    seen s;
    read_until(c, 99, NULL, &s);
    assert_int_equal(s.fillers, sent - 1);
    assert_int_equal(s.pong_at, 0);
    assert_int_equal(s.ntexts, keep);
    for (int i = 0; i < keep; i++) assert_int_equal(s.texts[i], 100 - keep + i);
    expect_end(d, id, c);
    assert_true(WAIT_UNTIL(D_GET(d, recoveries) == 1, 3000));
    char want[32];
    snprintf(want, sizeof want, "\"dropped\":%d,", 1 + 100 - keep);
    expect_json(d, d->recovered_json, want);
    assert_int_equal(D_GET(d, overflows), 1);
    assert_int_equal(D_GET(d, closes), 0);
    wsc_free(c);
    dsrv_free(d);
}

/* Without a topic (wsg_conn_send gives none), conflate drops what does not
 * fit, as drop_newest does. */
static void conflate_without_topics_drops_the_newest(void **state) {
    (void)state;
    const char *settings[] = {"limits.max_queue_bytes=65536", "limits.queue_policy=conflate", NULL};
    dsrv *d = dsrv_start(settings, 0);
    wsg_conn_id id;
    wsc *c = connect_client(d, &id);
    int64_t sent = 0;
    int64_t q0 = fill_until_stuck(d, id, &sent);
    int fit = (int)((65536 - q0) / TEXT_FRAMED);
    send_numbered(d, id, 0, 100);
    assert_true(WAIT_UNTIL(info_int(d, id, WSG_INFO_MESSAGES_OUT) == sent + 100, 5000));
    assert_int_equal(info_int(d, id, WSG_INFO_MESSAGES_DROPPED), 100 - fit);
    ping_while_full(c);
    assert_int_equal(D_GET(d, overflows), 1);
    expect_json(d, d->overflow_json, "\"policy\":\"conflate\"");
    seen s;
    read_until(c, fit - 1, NULL, &s);
    assert_int_equal(s.fillers, sent);
    assert_int_equal(s.pong_at, 0);
    assert_int_equal(s.ntexts, fit);
    for (int i = 0; i < fit; i++) assert_int_equal(s.texts[i], i);
    expect_end(d, id, c);
    assert_true(WAIT_UNTIL(D_GET(d, recoveries) == 1, 3000));
    wsc_free(c);
    dsrv_free(d);
}

/* A publish carries its topic as the conflation key: while the client is
 * behind, each topic's newest message takes the place of the one queued,
 * so the client gets the latest of each topic, in the order the topics
 * first queued. A subscriber that keeps up gets every message. */
static void conflate_keeps_the_latest_message_of_each_topic(void **state) {
    (void)state;
    const char *settings[] = {"limits.max_queue_bytes=65536", "limits.queue_policy=conflate", NULL};
    dsrv *d = dsrv_start(settings, 0);
    wsg_conn_id slow_id, fast_id;
    wsc *slow = connect_client(d, &slow_id);
    wsc *fast = connect_client(d, &fast_id);
    assert_int_equal(wsg_conn_set_queue_policy(d->srv, fast_id, WSG_QUEUE_CLOSE), WSG_OK);
    const char *topics[] = {"a", "b"};
    for (int t = 0; t < 2; t++) {
        assert_int_equal(wsg_conn_subscribe(d->srv, slow_id, topics[t]), WSG_OK);
        assert_int_equal(wsg_conn_subscribe(d->srv, fast_id, topics[t]), WSG_OK);
    }
    int64_t sent = 0;
    int64_t q0 = fill_until_stuck(d, slow_id, &sent);
    /* a1 b1 a2 b2 ... a5 b5, numbered 101..105 and 201..205. */
    char buf[TEXT];
    for (int i = 1; i <= 5; i++) {
        for (int t = 0; t < 2; t++) {
            numbered((t + 1) * 100 + i, buf);
            assert_int_equal(wsg_server_publish(d->srv, topics[t], WSG_MSG_TEXT, buf, sizeof buf), WSG_OK);
        }
    }
    assert_true(WAIT_UNTIL(info_int(d, slow_id, WSG_INFO_MESSAGES_OUT) == sent + 10, 5000));
    /* Two queued (one per topic), eight replaced. */
    assert_int_equal(info_int(d, slow_id, WSG_INFO_MESSAGES_DROPPED), 8);
    assert_int_equal(info_int(d, slow_id, WSG_INFO_QUEUED_BYTES), q0 + 2 * TEXT_FRAMED);
    assert_int_equal(D_GET(d, overflows), 1);
    expect_json(d, d->overflow_json, "\"policy\":\"conflate\"");

    seen s;
    read_until(fast, 205, NULL, &s);
    assert_int_equal(s.ntexts, 10);
    for (int i = 0; i < 10; i++) assert_int_equal(s.texts[i], (i % 2 + 1) * 100 + i / 2 + 1);
    read_until(slow, 205, NULL, &s);
    assert_int_equal(s.fillers, sent);
    assert_int_equal(s.ntexts, 2);
    assert_int_equal(s.texts[0], 105);
    assert_int_equal(s.texts[1], 205);
    expect_end(d, slow_id, slow);
    assert_true(WAIT_UNTIL(D_GET(d, recoveries) == 1, 3000));
    expect_json(d, d->recovered_json, "\"dropped\":8,");
    /* Caught up: the next publish is queued as usual. */
    numbered(106, buf);
    assert_int_equal(wsg_server_publish(d->srv, "a", WSG_MSG_TEXT, buf, sizeof buf), WSG_OK);
    read_until(slow, 106, NULL, &s);
    assert_int_equal(s.ntexts, 1);
    assert_int_equal(D_GET(d, closes), 0);
    wsc_free(slow);
    wsc_free(fast);
    dsrv_free(d);
}

struct sender {
    dsrv *d;
    wsg_conn_id id;
    wsg_status send, close, timeout, policy;
};

static void *calls_from_another_thread(void *arg) {
    struct sender *a = arg;
    a->send = wsg_conn_send(a->d->srv, a->id, WSG_MSG_TEXT, "late", 4);
    a->close = wsg_conn_close(a->d->srv, a->id, 1000, NULL);
    a->timeout = wsg_conn_set_timeout(a->d->srv, a->id, "heartbeat.pong_wait_ms", 1000);
    a->policy = wsg_conn_set_queue_policy(a->d->srv, a->id, WSG_QUEUE_DROP_NEWEST);
    return NULL;
}

/* Every call on the connection from another thread answers WSG_ECLOSED. */
static void expect_closed_everywhere(dsrv *d, wsg_conn_id id) {
    struct sender a = {d, id, WSG_OK, WSG_OK, WSG_OK, WSG_OK};
    pthread_t th;
    pthread_create(&th, NULL, calls_from_another_thread, &a);
    pthread_join(th, NULL);
    assert_int_equal(a.send, WSG_ECLOSED);
    assert_int_equal(a.close, WSG_ECLOSED);
    assert_int_equal(a.timeout, WSG_ECLOSED);
    assert_int_equal(a.policy, WSG_ECLOSED);
}

static void close_policy_closes_with_the_configured_code(void **state) {
    (void)state;
    const char *settings[] = {"limits.max_queue_bytes=65536", "limits.queue_close_code=1008",
                              "heartbeat.close_wait_ms=10000", NULL};
    dsrv *d = dsrv_start(settings, 0);
    wsg_conn_id id;
    wsc *c = connect_client(d, &id);
    int64_t sent = 0;
    int64_t q0 = fill_until_stuck(d, id, &sent);
    int fit = (int)((65536 - q0) / TEXT_FRAMED);
    send_numbered(d, id, 0, fit);
    assert_true(WAIT_UNTIL(info_int(d, id, WSG_INFO_MESSAGES_OUT) == sent + fit, 5000));
    /* One more does not fit: the server decides to close. From then on,
     * every thread is told at once, long before the close handshake (the
     * client is not reading) reports the connection closed. */
    send_numbered(d, id, fit, fit + 1);
    assert_true(WAIT_UNTIL(wsg_conn_send(d->srv, id, WSG_MSG_TEXT, "x", 1) == WSG_ECLOSED, 3000));
    expect_closed_everywhere(d, id);
    assert_int_equal(D_GET(d, closes), 0);
    assert_int_equal(D_GET(d, backpressures), 1);
    assert_int_equal(D_GET(d, overflows), 0);
    /* The queued messages went (not counted as dropped: the connection was
     * closed), the fillers already written arrive, then the close. */
    assert_int_equal(info_int(d, id, WSG_INFO_MESSAGES_DROPPED), 0);
    seen s;
    read_until(c, -1, NULL, &s);
    assert_int_equal(s.close_code, 1008);
    assert_int_equal(s.ntexts, 0);
    assert_int_equal(s.fillers, sent - 1); /* the one still queued went with the queue */
    assert_int_equal(wsc_send_close(c, 1008, NULL), 0);
    assert_int_equal(wsc_wait_closed(c, 3000, 0, NULL), 1);
    assert_true(WAIT_UNTIL(D_GET(d, closes) == 1, 3000));
    pthread_mutex_lock(&d->mu);
    assert_int_equal(d->close_code, 1008);
    assert_int_equal(d->close_cause, WSG_CAUSE_BACKPRESSURE);
    pthread_mutex_unlock(&d->mu);
    wsc_free(c);
    dsrv_free(d);
}

/* A close the heartbeat decides (idle timeout) is seen by every thread at
 * once too, while our close frame waits for the client's answer. */
static void timeout_close_is_closed_for_every_thread_at_once(void **state) {
    (void)state;
    const char *settings[] = {"heartbeat.idle_timeout_ms=200", "heartbeat.close_wait_ms=10000", NULL};
    dsrv *d = dsrv_start(settings, 0);
    wsg_conn_id id;
    wsc *c = connect_client(d, &id);
    assert_int_equal(wsg_conn_send(d->srv, id, WSG_MSG_TEXT, "hi", 2), WSG_OK);
    assert_true(WAIT_UNTIL(wsg_conn_send(d->srv, id, WSG_MSG_TEXT, "x", 1) == WSG_ECLOSED, 3000));
    expect_closed_everywhere(d, id);
    assert_int_equal(D_GET(d, closes), 0);
    wsc_frame f;
    assert_int_equal(wsc_recv_message(c, &f, 3000), 1);
    assert_memory_equal(f.data, "hi", 2);
    wsc_frame_free(&f);
    /* The "x" sent before the close was decided, then the close frame. */
    for (;;) {
        assert_int_equal(wsc_recv_message(c, &f, 3000), 1);
        if (f.opcode != 1) break;
        assert_int_equal(f.len, 1);
        assert_memory_equal(f.data, "x", 1);
        wsc_frame_free(&f);
    }
    assert_int_equal(f.opcode, 8);
    assert_int_equal(f.close_code, 1001);
    wsc_frame_free(&f);
    wsc_close(c, 1001, 3000);
    assert_true(WAIT_UNTIL(D_GET(d, closes) == 1, 3000));
    dsrv_free(d);
}

/* ---- on_drain ---- */

static void drain_fires_once_per_crossing_from_high_to_low(void **state) {
    (void)state;
    const char *settings[] = {"limits.max_queue_bytes=1048576", "limits.queue_high_water_bytes=262144",
                              "limits.queue_low_water_bytes=65536", NULL};
    dsrv *d = dsrv_start(settings, 1);
    wsg_conn_id id;
    wsc *c = connect_client(d, &id);

    /* Up to half the high-water mark and back: no crossing, no drain. */
    int64_t sent = 0;
    fill_until_stuck(d, id, &sent);
    for (int i = 0; i < 3; i++) send_filler(d, id, &sent);
    assert_true(info_int(d, id, WSG_INFO_QUEUED_BYTES) <= 262144);
    seen s;
    assert_int_equal(wsg_conn_send(d->srv, id, WSG_MSG_TEXT, "end", 3), WSG_OK);
    read_until(c, -1, "end", &s);
    assert_int_equal(s.fillers, sent);
    assert_true(WAIT_UNTIL(info_int(d, id, WSG_INFO_QUEUED_BYTES) == 0, 3000));
    tu_sleep_ms(50);
    assert_int_equal(D_GET(d, drains), 0);

    for (int crossing = 1; crossing <= 2; crossing++) {
        sent = 0;
        fill_until_stuck(d, id, &sent);
        while (info_int(d, id, WSG_INFO_QUEUED_BYTES) <= 262144) send_filler(d, id, &sent);
        assert_int_equal(D_GET(d, drains), crossing - 1);
        /* The client catches up: on_drain runs once, with what is left
         * (at most the low-water mark), and what it sends comes after. */
        read_until(c, -1, "drained", &s);
        assert_int_equal(s.fillers, sent);
        assert_int_equal(D_GET(d, drains), crossing);
        pthread_mutex_lock(&d->mu);
        assert_true(d->drain_queued <= 65536);
        assert_int_equal(d->drain_send, WSG_OK);
        pthread_mutex_unlock(&d->mu);
        expect_end(d, id, c);
        tu_sleep_ms(50);
        assert_int_equal(D_GET(d, drains), crossing);
    }
    /* Nothing was dropped: on_drain is a signal, not a policy. */
    assert_int_equal(info_int(d, id, WSG_INFO_MESSAGES_DROPPED), 0);
    assert_int_equal(D_GET(d, overflows), 0);
    wsc_free(c);
    dsrv_free(d);
}

/* ---- arguments ---- */

static void queue_policy_arguments_are_checked(void **state) {
    (void)state;
    assert_string_equal(wsg_queue_policy_str(WSG_QUEUE_CLOSE), "close");
    assert_string_equal(wsg_queue_policy_str(WSG_QUEUE_DROP_NEWEST), "drop_newest");
    assert_string_equal(wsg_queue_policy_str(WSG_QUEUE_DROP_OLDEST), "drop_oldest");
    assert_string_equal(wsg_queue_policy_str(WSG_QUEUE_CONFLATE), "conflate");
    assert_string_equal(wsg_queue_policy_str((wsg_queue_policy)0), "unknown");
    assert_string_equal(wsg_queue_policy_str((wsg_queue_policy)5), "unknown");

    dsrv *d = dsrv_start(NULL, 0);
    wsg_conn_id id;
    wsc *c = connect_client(d, &id);
    assert_int_equal(wsg_conn_set_queue_policy(d->srv, id, (wsg_queue_policy)0), WSG_EINVAL);
    assert_non_null(strstr(wsg_last_error(), "WSG_QUEUE_DROP_NEWEST"));
    assert_int_equal(wsg_conn_set_queue_policy(d->srv, id, (wsg_queue_policy)99), WSG_EINVAL);
    assert_int_equal(wsg_conn_set_queue_policy(NULL, id, WSG_QUEUE_CLOSE), WSG_EINVAL);
    assert_int_equal(wsg_conn_set_queue_policy(d->srv, id + 1, WSG_QUEUE_CLOSE), WSG_ENOTFOUND);
    assert_int_equal(wsg_conn_set_queue_policy(d->srv, 0, WSG_QUEUE_CLOSE), WSG_ENOTFOUND);
    /* None of these changed it. */
    tu_sleep_ms(20);
    assert_int_equal(info_int(d, id, WSG_INFO_QUEUE_POLICY), WSG_QUEUE_CLOSE);
    assert_int_equal(info_int(d, id, WSG_INFO_QUEUED_BYTES), 0);
    assert_int_equal(info_int(d, id, WSG_INFO_MESSAGES_DROPPED), 0);
    /* Registering on_drain is only allowed before the server listens. */
    assert_int_equal(wsg_server_on_drain(d->srv, NULL, NULL, NULL), WSG_ESTATE);
    assert_int_equal(wsg_server_on_drain(NULL, NULL, NULL, NULL), WSG_EINVAL);
    wsc_close(c, 1000, 3000);
    assert_true(WAIT_UNTIL(D_GET(d, closes) == 1, 3000));
    assert_int_equal(wsg_conn_set_queue_policy(d->srv, id, WSG_QUEUE_CLOSE), WSG_ENOTFOUND);
    dsrv_free(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(queue_policy_arguments_are_checked),
        cmocka_unit_test(drop_newest_keeps_the_queue_and_drops_what_does_not_fit),
        cmocka_unit_test(drop_oldest_drops_whole_messages_from_the_front),
        cmocka_unit_test(conflate_without_topics_drops_the_newest),
        cmocka_unit_test(conflate_keeps_the_latest_message_of_each_topic),
        cmocka_unit_test(close_policy_closes_with_the_configured_code),
        cmocka_unit_test(timeout_close_is_closed_for_every_thread_at_once),
        cmocka_unit_test(drain_fires_once_per_crossing_from_high_to_low),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
