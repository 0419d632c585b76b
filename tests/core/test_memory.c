/* Memory after backpressure (issue 16, 5): twenty clients stop reading while
 * the server sends them far more than they take, so the send queues fill up
 * to the caps; then they all leave.
 *  - All queues together stay under limits.max_total_queue_bytes, each
 *    connection paying with its own policy (drop_newest here: counted, and
 *    logged as one server-wide episode).
 *  - The freed queue memory goes back to the system (tuning.trim_memory):
 *    the process's resident size (VmRSS, /proc/self/statm: the server runs
 *    in this process) is printed before, during and after, and must come
 *    back near the figure before the burst. Without the trim it does not:
 *    glibc keeps freed chunks that do not sit at the top of a heap.
 * Under a sanitizer the allocator is the sanitizer's (ASan's quarantine):
 * the resident figures are printed but not asserted; the cap is checked. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>

#include "testutil.h"
#include "wsclient.h"

/* A sanitizer's allocator (ASan's quarantine, TSan's own heap) decides
 * what stays resident: the figures are printed, not asserted. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define WSG_SANITIZER_HEAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define WSG_SANITIZER_HEAP 1
#endif
#endif

#define CLIENTS 20
#define PAYLOAD 16384                 /* one message: 16,388 bytes framed */
#define FRAMED (PAYLOAD + 4)
#define MIB (1024 * 1024)
#define TOTAL_CAP (128 * MIB)         /* all queues together */
#define PER_CLIENT 1000               /* 16 MiB offered to each: the cap refuses about 200 MiB */

static size_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    return n == 2 ? (size_t)resident * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

static int64_t info_int(wsg_server *srv, wsg_conn_id id, wsg_info_key key) {
    wsg_conn_info *info = NULL;
    if (wsg_conn_info_get(srv, id, &info) != WSG_OK) return -1;
    int64_t v = -1;
    if (wsg_conn_info_int(info, key, &v) != WSG_OK) v = -2;
    wsg_conn_info_free(info);
    return v;
}

static int64_t sum_info(wsg_server *srv, const wsg_conn_id *ids, wsg_info_key key) {
    int64_t sum = 0;
    for (int i = 0; i < CLIENTS; i++) sum += info_int(srv, ids[i], key);
    return sum;
}

/* A server that, asked "fill" by a client, sends it PER_CLIENT messages
 * from the callback (frames made on the service thread, as a server that
 * answers requests makes them), and keeps what these tests look at. */
typedef struct msrv {
    wsg_server *srv;
    int port;
    pthread_mutex_t mu;
    /* guarded by mu */
    int opens, closes, fills;
    wsg_conn_id last_open;
    int overflows, recoveries, trims;
    char overflow_json[1024], recovered_json[1024];
} msrv;

static void m_open(wsg_server *s, wsg_conn_id id, void *user) {
    (void)s;
    msrv *m = user;
    pthread_mutex_lock(&m->mu);
    m->opens++;
    m->last_open = id;
    pthread_mutex_unlock(&m->mu);
}

static void m_close(wsg_server *s, wsg_conn_id id, int code, const char *reason, size_t rl, wsg_close_cause cause,
                    void *user) {
    (void)s, (void)id, (void)code, (void)reason, (void)rl, (void)cause;
    msrv *m = user;
    pthread_mutex_lock(&m->mu);
    m->closes++;
    pthread_mutex_unlock(&m->mu);
}

static void m_message(wsg_server *s, wsg_conn_id id, wsg_msg_type type, const void *data, size_t len, void *user) {
    (void)type;
    msrv *m = user;
    if (len != 4 || memcmp(data, "fill", 4) != 0) return;
    static char payload[PAYLOAD];
    memset(payload, 'q', sizeof payload);
    for (int i = 0; i < PER_CLIENT; i++) wsg_conn_send(s, id, WSG_MSG_BINARY, payload, sizeof payload);
    pthread_mutex_lock(&m->mu);
    m->fills++;
    pthread_mutex_unlock(&m->mu);
}

static void m_log(wsg_server *s, wsg_log_level level, const char *event, const char *json, size_t len, void *user) {
    (void)s, (void)level;
    msrv *m = user;
    pthread_mutex_lock(&m->mu);
    char *into = NULL;
    if (!strcmp(event, "queue_overflow")) {
        m->overflows++;
        into = m->overflow_json;
    } else if (!strcmp(event, "queue_recovered")) {
        m->recoveries++;
        into = m->recovered_json;
    } else if (!strcmp(event, "memory_trim")) {
        m->trims++;
    }
    if (into) {
        size_t n = len < 1023 ? len : 1023;
        memcpy(into, json, n);
        into[n] = 0;
    }
    pthread_mutex_unlock(&m->mu);
}

static int m_get(msrv *m, const int *field) {
    pthread_mutex_lock(&m->mu);
    int v = *field;
    pthread_mutex_unlock(&m->mu);
    return v;
}
#define M_GET(m, field) m_get((m), &(m)->field)

typedef struct burst {
    msrv m;
    wsc *clients[CLIENTS];
    wsg_conn_id ids[CLIENTS];
} burst;

/* Twenty clients that never read. */
static void connect_all(burst *b, const char *const *settings) {
    memset(b, 0, sizeof *b);
    msrv *m = &b->m;
    pthread_mutex_init(&m->mu, NULL);
    wsg_config *cfg;
    assert_int_equal(wsg_config_new(&cfg), WSG_OK);
    for (int i = 0; settings[i]; i++) assert_int_equal(wsg_config_set_from_string(cfg, settings[i]), WSG_OK);
    assert_int_equal(wsg_server_new(&m->srv, cfg), WSG_OK);
    wsg_config_free(cfg);
    assert_int_equal(wsg_server_on_open(m->srv, m_open, m, NULL), WSG_OK);
    assert_int_equal(wsg_server_on_close(m->srv, m_close, m, NULL), WSG_OK);
    assert_int_equal(wsg_server_on_message(m->srv, m_message, m, NULL), WSG_OK);
    assert_int_equal(wsg_server_on_log(m->srv, m_log, m, NULL), WSG_OK);
    assert_int_equal(wsg_server_start(m->srv), WSG_OK);
    assert_int_equal(wsg_server_port(m->srv, &m->port), WSG_OK);
    for (int i = 0; i < CLIENTS; i++) {
        b->clients[i] = wsc_connect("127.0.0.1", m->port, "/", NULL, 3000, NULL);
        assert_non_null(b->clients[i]);
        assert_true(WAIT_UNTIL(M_GET(m, opens) == i + 1, 3000));
        pthread_mutex_lock(&m->mu);
        b->ids[i] = m->last_open;
        pthread_mutex_unlock(&m->mu);
    }
}

/* Waits until the service thread has handled all CLIENTS * PER_CLIENT
 * messages (msgs_out counts the dropped too); the clients do not read, so
 * nothing more is written after. */
static void wait_sent(burst *b) {
    assert_true(WAIT_UNTIL(sum_info(b->m.srv, b->ids, WSG_INFO_MESSAGES_OUT) == (int64_t)CLIENTS * PER_CLIENT,
                           20000));
    tu_sleep_ms(200);
}

/* PER_CLIENT messages to each from this thread, round robin. */
static void send_all(burst *b) {
    static char payload[PAYLOAD];
    memset(payload, 'q', sizeof payload);
    for (int m = 0; m < PER_CLIENT; m++)
        for (int i = 0; i < CLIENTS; i++)
            assert_int_equal(wsg_conn_send(b->m.srv, b->ids[i], WSG_MSG_BINARY, payload, sizeof payload), WSG_OK);
    wait_sent(b);
}

/* Each client asks for PER_CLIENT messages: the server sends them from its callback. */
static void request_all(burst *b) {
    for (int i = 0; i < CLIENTS; i++) assert_int_equal(wsc_send_text(b->clients[i], "fill"), 0);
    assert_true(WAIT_UNTIL(M_GET(&b->m, fills) == CLIENTS, 10000));
    wait_sent(b);
}

static void leave_all(burst *b) {
    for (int i = 0; i < CLIENTS; i++) wsc_abort(b->clients[i]);
    assert_true(WAIT_UNTIL(M_GET(&b->m, closes) == CLIENTS, 5000));
}

static void burst_free(burst *b) {
    wsg_server_free(b->m.srv);
    pthread_mutex_destroy(&b->m.mu);
}

static const char *const kSettings[] = {
    "limits.max_total_queue_bytes=134217728", "limits.queue_policy=drop_newest",
    "heartbeat.ping_interval_ms=0", "heartbeat.write_wait_ms=0", "log.level=debug", "listen.host=127.0.0.1",
    "listen.port=0", NULL};

static void test_all_queues_stay_under_the_total_cap(void **state) {
    (void)state;
    burst b;
    connect_all(&b, kSettings);
    send_all(&b);
    wsg_server *srv = b.m.srv;
    const int64_t queued = sum_info(srv, b.ids, WSG_INFO_QUEUED_BYTES);
    const int64_t dropped = sum_info(srv, b.ids, WSG_INFO_MESSAGES_DROPPED);
    print_message("queued %lld bytes in all (cap %d), %lld messages dropped\n", (long long)queued, TOTAL_CAP,
                  (long long)dropped);
    /* Sent one at a time from this thread: every client fell behind long
     * before the cap was reached (its kernel buffers hold a few MiB at most),
     * so each message past the cap met its connection's policy: the total
     * stays at the cap, within one message below it. */
    assert_true(queued <= TOTAL_CAP);
    assert_true(queued > TOTAL_CAP - FRAMED);
    /* Each queue alone could hold 16 MiB: the total cap refused these. */
    assert_true(dropped > 0);
    for (int i = 0; i < CLIENTS; i++) assert_true(info_int(srv, b.ids[i], WSG_INFO_QUEUED_BYTES) < 16 * MIB);
    /* Counted per connection, logged once for the server. */
    assert_int_equal(M_GET(&b.m, overflows), 1);
    pthread_mutex_lock(&b.m.mu);
    assert_non_null(strstr(b.m.overflow_json, "\"cap\":\"total\""));
    assert_non_null(strstr(b.m.overflow_json, "\"limit\":134217728"));
    pthread_mutex_unlock(&b.m.mu);
    leave_all(&b);
    /* Ended 2 s after the last refusal, with the count. */
    assert_true(WAIT_UNTIL(M_GET(&b.m, recoveries) == 1, 5000));
    char want[64];
    snprintf(want, sizeof want, "\"dropped\":%lld", (long long)dropped);
    pthread_mutex_lock(&b.m.mu);
    assert_non_null(strstr(b.m.recovered_json, want));
    pthread_mutex_unlock(&b.m.mu);
    burst_free(&b);
}

static void test_memory_goes_back_after_slow_readers_leave(void **state) {
    (void)state;
    burst b;
    connect_all(&b, kSettings);
    tu_sleep_ms(200);
    const size_t before = rss_bytes();
    request_all(&b);
    const size_t during = rss_bytes();
    const int64_t queued = sum_info(b.m.srv, b.ids, WSG_INFO_QUEUED_BYTES);
    /* Replies sent from the callback: a client that had kept up until then
     * may use the reserve above the cap (an eighth of it). */
    assert_true(queued <= TOTAL_CAP + TOTAL_CAP / 8);
    leave_all(&b);
    /* What may stay, derived from the trim rule (lib/core/memory_trim.h):
     * once the queues are empty, a trim comes at the next tick, or at most
     * 5 s after the previous one, unless what they held since that trim
     * stayed under 8 MiB, which is left to the allocator by design. After a
     * trim glibc keeps only pages holding a live chunk and a top pad of
     * 128 KiB per arena (a few here): 1 MiB covers them. */
    const size_t bound = before + (size_t)8 * MIB + (size_t)1 * MIB;
    size_t after = rss_bytes();
    for (int64_t end = tu_now_ms() + 5000 + 1000; after > bound && tu_now_ms() < end; after = rss_bytes())
        tu_sleep_ms(50);
    print_message("RSS before %zu KiB, during %zu KiB (%lld bytes queued), after %zu KiB (bound %zu KiB), %d trims\n",
                  before / 1024, during / 1024, (long long)queued, after / 1024, bound / 1024, M_GET(&b.m, trims));
#ifdef WSG_SANITIZER_HEAP
    print_message("sanitizer build: its allocator decides what stays resident; RSS printed, not asserted\n");
#else
    assert_true(during > before + TOTAL_CAP / 2);  /* the burst was real */
    assert_true(after <= bound);
    assert_true(M_GET(&b.m, trims) >= 1);
#endif
    burst_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        /* First: what the process holds before is not inflated by another case's burst. */
        cmocka_unit_test(test_memory_goes_back_after_slow_readers_leave),
        cmocka_unit_test(test_all_queues_stay_under_the_total_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
