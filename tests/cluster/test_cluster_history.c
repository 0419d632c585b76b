/* History and recovery with the cluster, on a real Redis: every message of
 * a history topic gets a position and reaches the subscribers of every
 * instance in offset order, once; a connection subscribed "from" a
 * position on another instance gets what it missed, then the live messages,
 * with no gap and no duplicate, even while publishes go on; a position too
 * old or of another epoch is WSG_EGONE; publishes while Redis is killed
 * reach the other instances once it is back, and what they missed is
 * filled in; bad input is refused at once. */
#include <pthread.h>

#include "cluster_util.h"
#include "history_util.h"

static redis_proc *redis;


static tsrv *hinstance(const char *prefix, const char *size) {
    char sz[64];
    snprintf(sz, sizeof sz, "cluster.history_size=%s", size);
    const char *extra[] = {"cluster.history_topics=room:*,news", sz, NULL};
    tsrv_before_start = install_position_prefix;
    tsrv *t = instance(redis->address, prefix, extra);
    tsrv_before_start = NULL;
    return t;
}

/* The next `n` messages of c have the offsets after *last, in order, within
 * 3 s each; *last follows. */
static void expect_run(wsc *c, wsg_position *last, int n) {
    for (int i = 0; i < n; i++) {
        wsg_position p;
        char payload[256];
        if (!recv_positioned(c, 3000, &p, payload, sizeof payload))
            fail_msg("message %d of %d after offset %llu did not come", i + 1, n, (unsigned long long)last->offset);
        if (last->epoch && p.epoch != last->epoch) fail_msg("epoch changed from %llu to %llu",
                                                          (unsigned long long)last->epoch, (unsigned long long)p.epoch);
        if (p.offset != last->offset + 1)
            fail_msg("offset %llu after %llu (a gap or a duplicate)", (unsigned long long)p.offset,
                     (unsigned long long)last->offset);
        *last = p;
    }
}

static void publish_n(tsrv *t, const char *topic, int n) {
    for (int i = 0; i < n; i++) {
        char m[32];
        int len = snprintf(m, sizeof m, "m%d", i);
        assert_int_equal(wsg_server_publish(t->srv, topic, WSG_MSG_TEXT, m, (size_t)len), WSG_OK);
    }
}

static void same_order_everywhere(void **state) {
    (void)state;
    redis = rp_start(NULL);
    assert_non_null(redis);
    tsrv *A = hinstance("o", "100"), *B = hinstance("o", "100"), *C = hinstance("o", "100");
    assert_true(A && B && C);
    assert_true(WAIT_UNTIL(cluster_up(A) && cluster_up(B) && cluster_up(C), 5000));
    client a = open_user(A, NULL), b = open_user(B, NULL), c = open_user(C, NULL);
    assert_int_equal(wsg_conn_subscribe(A->srv, a.id, "room:1"), WSG_OK);
    assert_int_equal(wsg_conn_subscribe(B->srv, b.id, "room:1"), WSG_OK);
    assert_int_equal(wsg_conn_subscribe(C->srv, c.id, "room:1"), WSG_OK);
    assert_true(WAIT_UNTIL(numsub(redis, "o:t:room:1") == 3, 2000));
    /* Publishes from two instances interleave: one order for everybody. */
    for (int i = 0; i < 20; i++) {
        publish_n(A, "room:1", 1);
        publish_n(C, "room:1", 1);
    }
    wsg_position pa = {0, 0}, pb = {0, 0}, pc = {0, 0};
    expect_run(a.c, &pa, 40);
    expect_run(b.c, &pb, 40);
    expect_run(c.c, &pc, 40);
    assert_true(pa.epoch == pb.epoch && pb.epoch == pc.epoch && pa.offset == 40);
    expect_nothing(a.c, 150);
    expect_nothing(b.c, 1);
    expect_nothing(c.c, 1);
    /* In Redis: the stream, the offset, the epoch, all with the TTL. */
    const char *xlen[] = {"XLEN", "o:h:room:1"}, *pttl[] = {"PTTL", "o:he:room:1"};
    char *reply = rp_query(redis, 2, xlen);
    assert_non_null(reply);
    assert_int_equal(atoi(reply), 40);
    free(reply);
    reply = rp_query(redis, 2, pttl);
    assert_non_null(reply);
    assert_true(atoll(reply) > 590000);
    free(reply);
    wsc_free(a.c);
    wsc_free(b.c);
    wsc_free(c.c);
    assert_int_equal(tsrv_free(A) + tsrv_free(B) + tsrv_free(C), 0);
    rp_free(redis);
}

typedef struct {
    tsrv *t;
    int n;
} publisher;

static void *publish_slowly(void *arg) {
    publisher *p = (publisher *)arg;
    for (int i = 0; i < p->n; i++) {
        publish_n(p->t, "room:2", 1);
        tu_sleep_ms(1);
    }
    return NULL;
}

static void recovery_on_another_instance(void **state) {
    (void)state;
    redis = rp_start(NULL);
    assert_non_null(redis);
    tsrv *A = hinstance("r", "1000"), *B = hinstance("r", "1000"), *C = hinstance("r", "1000");
    assert_true(A && B && C);
    assert_true(WAIT_UNTIL(cluster_up(A) && cluster_up(B) && cluster_up(C), 5000));
    client x = open_user(B, NULL);
    assert_int_equal(wsg_conn_subscribe(B->srv, x.id, "room:2"), WSG_OK);
    assert_true(WAIT_UNTIL(numsub(redis, "r:t:room:2") == 1, 2000));
    publish_n(A, "room:2", 5);
    wsg_position seen = {0, 0};
    expect_run(x.c, &seen, 5);
    /* x goes away; 10 more are published; it comes back on C "from" where
     * it was, while A keeps publishing. */
    wsc_free(x.c);
    publish_n(A, "room:2", 10);
    client y = open_user(C, NULL);
    publisher p = {A, 200};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, publish_slowly, &p), 0);
    tu_sleep_ms(20);
    from_answer ans;
    from_answer_init(&ans);
    const int64_t t0 = tu_now_ms();
    assert_int_equal(wsg_conn_subscribe_from(C->srv, y.id, "room:2", &seen, from_cb, &ans), WSG_OK);
    wsg_position last = seen;
    expect_run(y.c, &last, 10 + 200);
    pthread_join(th, NULL);
    expect_nothing(y.c, 200);
    assert_true(WAIT_UNTIL(from_calls(&ans) == 1, 3000));
    assert_int_equal(ans.status, WSG_OK);
    assert_true(ans.has_position && ans.pos.epoch == seen.epoch && ans.pos.offset > 15);
    /* What the replay gave (the rest came live), counted where it ran. */
    assert_int_equal(tsrv_metric(C, "wsgate_history_replayed_messages_total"), (long long)(ans.pos.offset - seen.offset));
    assert_int_equal(tsrv_metric(A, "wsgate_history_replayed_messages_total"), 0);
    print_message("recovery of %llu messages with 200 concurrent publishes: %lld ms\n",
                  (unsigned long long)(last.offset - seen.offset), (long long)(tu_now_ms() - t0));

    /* Nothing missed: only the current position. */
    from_answer now;
    from_answer_init(&now);
    client z = open_user(B, NULL);
    assert_int_equal(wsg_conn_subscribe_from(B->srv, z.id, "room:2", &last, from_cb, &now), WSG_OK);
    assert_true(WAIT_UNTIL(from_calls(&now) == 1, 3000));
    assert_int_equal(now.status, WSG_OK);
    assert_true(now.pos.epoch == last.epoch && now.pos.offset == last.offset);
    expect_nothing(z.c, 100);
    assert_int_equal(wsg_conn_subscribe_from(B->srv, z.id, "room:2", NULL, from_cb, &now), WSG_OK);
    assert_true(WAIT_UNTIL(from_calls(&now) == 2, 3000));
    assert_int_equal(now.status, WSG_OK);
    assert_true(now.pos.offset == last.offset);
    /* Subscribed at once: live ones follow. */
    publish_n(A, "room:2", 1);
    wsg_position zl = last;
    expect_run(z.c, &zl, 1);

    /* Too old: the history keeps 1000; another epoch; ahead. */
    publish_n(A, "room:3", 1005);
    client w = open_user(C, NULL);
    wsg_position old = {0, 0};
    /* Publishes are asynchronous: all written once the offset is 1005. */
    const char *get[] = {"GET", "r:he:room:3"}, *off[] = {"GET", "r:ho:room:3"};
    char *reply = NULL;
    assert_true(WAIT_UNTIL((free(reply), reply = rp_query(redis, 2, off), reply && atoi(reply) == 1005), 5000));
    free(reply);
    /* The epoch of room:3. */
    reply = rp_query(redis, 2, get);
    assert_non_null(reply);
    old.epoch = strtoull(reply, NULL, 10);
    free(reply);
    old.offset = 3;
    from_answer gone;
    from_answer_init(&gone);
    assert_int_equal(wsg_conn_subscribe_from(C->srv, w.id, "room:3", &old, from_cb, &gone), WSG_OK);
    assert_true(WAIT_UNTIL(from_calls(&gone) == 1, 3000));
    assert_int_equal(gone.status, WSG_EGONE);
    if (!strstr(gone.message, "older than the oldest")) fail_msg("message: %s", gone.message);
    assert_false(gone.has_position);
    old.offset = 10;  /* still kept: fine */
    assert_int_equal(wsg_conn_subscribe_from(C->srv, w.id, "room:3", &old, from_cb, &gone), WSG_OK);
    assert_true(WAIT_UNTIL(from_calls(&gone) == 2, 3000));
    assert_int_equal(gone.status, WSG_OK);
    wsg_position wl = old;
    expect_run(w.c, &wl, 995);
    old.epoch ^= 1;
    assert_int_equal(wsg_conn_subscribe_from(C->srv, w.id, "room:3", &old, from_cb, &gone), WSG_OK);
    assert_true(WAIT_UNTIL(from_calls(&gone) == 3, 3000));
    assert_int_equal(gone.status, WSG_EGONE);
    assert_non_null(strstr(gone.message, "another epoch"));
    const wsg_position start = {0, 0};
    assert_int_equal(wsg_conn_subscribe_from(C->srv, w.id, "room:3", &start, from_cb, &gone), WSG_OK);
    assert_true(WAIT_UNTIL(from_calls(&gone) == 4, 3000));
    assert_int_equal(gone.status, WSG_EGONE);
    expect_nothing(w.c, 100);

    wsc_free(y.c);
    wsc_free(z.c);
    wsc_free(w.c);
    assert_int_equal(tsrv_free(A) + tsrv_free(B) + tsrv_free(C), 0);
    rp_free(redis);
    pthread_mutex_destroy(&ans.mu);
    pthread_mutex_destroy(&now.mu);
    pthread_mutex_destroy(&gone.mu);
}

/* The first subscriber of a topic on an instance gets what this instance
 * publishes right after (in the order of the calls), though Redis has not
 * confirmed the instance's channel yet: the instance read where the history
 * stood when the topic got its subscriber, and reads again when the channel
 * is confirmed. Each topic is new, its history empty. (A publish on ANOTHER
 * instance right after is not ordered with the subscription: as for any
 * topic, it may come before it took effect.) Fails without the read:
 * "message 1 of 2 after offset 0 did not come". */
static void first_subscriber(void **state) {
    (void)state;
    redis = rp_start(NULL);
    assert_non_null(redis);
    tsrv *A = hinstance("f", "100"), *B = hinstance("f", "100");
    assert_true(A && B);
    assert_true(WAIT_UNTIL(cluster_up(A) && cluster_up(B), 5000));
    client b = open_user(B, NULL);
    for (int i = 0; i < 8; i++) {
        char topic[32];
        snprintf(topic, sizeof topic, "room:f%d", i);
        assert_int_equal(wsg_conn_subscribe(B->srv, b.id, topic), WSG_OK);
        publish_n(B, topic, 2);
        wsg_position p = {0, 0};
        expect_run(b.c, &p, 2);
    }
    expect_nothing(b.c, 100);
    wsc_free(b.c);
    assert_int_equal(tsrv_free(A) + tsrv_free(B), 0);
    rp_free(redis);
}

static void redis_killed(void **state) {
    (void)state;
    redis = rp_start(NULL);
    assert_non_null(redis);
    tsrv *A = hinstance("k", "100"), *B = hinstance("k", "100");
    assert_true(A && B);
    assert_true(WAIT_UNTIL(cluster_up(A) && cluster_up(B), 5000));
    client a = open_user(A, NULL), b = open_user(B, NULL);
    assert_int_equal(wsg_conn_subscribe(A->srv, a.id, "news"), WSG_OK);
    assert_int_equal(wsg_conn_subscribe(B->srv, b.id, "news"), WSG_OK);
    assert_true(WAIT_UNTIL(numsub(redis, "k:t:news") == 2, 2000));
    publish_n(A, "news", 3);
    wsg_position pa = {0, 0}, pb = {0, 0};
    expect_run(a.c, &pa, 3);
    expect_run(b.c, &pb, 3);

    rp_kill(redis);
    assert_true(WAIT_UNTIL(!cluster_up(A) && !cluster_up(B), 3000));
    /* A's own subscriber gets them at once (no position yet). */
    publish_n(A, "news", 5);
    for (int i = 0; i < 5; i++) {
        wsg_position p;
        char payload[64];
        assert_true(recv_positioned(a.c, 1000, &p, payload, sizeof payload));
        assert_true(p.epoch == 0 && p.offset == 0);
    }
    expect_nothing(b.c, 100);
    assert_int_equal(tsrv_metric(A, "wsgate_history_kept_messages"), 5);

    /* Back (empty: a new epoch): B's subscriber gets the five within a
     * second, in order; A's does not get them twice. */
    assert_int_equal(rp_restart(redis), 0);
    const int64_t t0 = tu_now_ms();
    wsg_position nb = {0, 0};
    expect_run(b.c, &nb, 5);
    const int64_t took = tu_now_ms() - t0;
    print_message("publishes of the outage delivered %lld ms after Redis restarted\n", (long long)took);
    assert_true(took < 1500);
    assert_true(nb.epoch != pb.epoch);
    assert_true(WAIT_UNTIL(tsrv_metric(A, "wsgate_history_kept_messages") == 0, 1000));
    expect_nothing(a.c, 200);
    expect_nothing(b.c, 1);
    /* And on: the next publish follows on both. */
    publish_n(A, "news", 1);
    wsg_position na = nb;
    expect_run(b.c, &nb, 1);
    expect_run(a.c, &na, 1);

    publish_n(A, "news", 4);
    expect_run(a.c, &na, 4);
    expect_run(b.c, &nb, 4);
    expect_nothing(b.c, 100);

    wsc_free(a.c);
    wsc_free(b.c);
    assert_int_equal(tsrv_free(A) + tsrv_free(B), 0);
    rp_free(redis);
}

static void bad_input(void **state) {
    (void)state;
    redis = rp_start(NULL);
    assert_non_null(redis);
    tsrv *A = hinstance("b", "10");
    assert_non_null(A);
    assert_true(WAIT_UNTIL(cluster_up(A), 5000));
    client a = open_user(A, NULL);
    wsg_position p = {1, 1};
    assert_int_equal(wsg_conn_subscribe_from(A->srv, a.id, "plain", &p, NULL, NULL), WSG_EINVAL);
    assert_non_null(strstr(wsg_last_error(), "cluster.history_topics"));
    assert_int_equal(wsg_conn_subscribe_from(A->srv, a.id, NULL, &p, NULL, NULL), WSG_EINVAL);
    assert_int_equal(wsg_conn_subscribe_from(NULL, a.id, "news", &p, NULL, NULL), WSG_EINVAL);
    assert_int_equal(wsg_conn_subscribe_from(A->srv, a.id + 1000, "news", &p, NULL, NULL), WSG_ENOTFOUND);
    /* A stream of something else under the key: Redis' error, as WSG_ECLUSTER. */
    const char *set[] = {"SET", "b:h:room:x", "x"}, *seteh[] = {"SET", "b:he:room:x", "5"};
    free(rp_query(redis, 3, set));
    free(rp_query(redis, 3, seteh));
    from_answer ans;
    from_answer_init(&ans);
    wsg_position q = {5, 1};
    assert_int_equal(wsg_conn_subscribe_from(A->srv, a.id, "room:x", &q, from_cb, &ans), WSG_OK);
    assert_true(WAIT_UNTIL(from_calls(&ans) == 1, 3000));
    assert_int_equal(ans.status, WSG_ECLUSTER);
    assert_non_null(strstr(ans.message, "WRONGTYPE"));
    assert_true(cluster_up(A));
    wsc_free(a.c);
    assert_int_equal(tsrv_free(A), 0);
    rp_free(redis);
    pthread_mutex_destroy(&ans.mu);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_order_everywhere),
        cmocka_unit_test(recovery_on_another_instance),
        cmocka_unit_test(first_subscriber),
        cmocka_unit_test(redis_killed),
        cmocka_unit_test(bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
