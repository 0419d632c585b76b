/* Three wsgate instances in this process and one real Redis: a publish,
 * a user's messages and a connection's messages and closes reach clients on
 * every instance, once; the publisher's own subscribers get it without a
 * duplicate; an instance listens to a topic's (or user's) channel exactly
 * while it has a local subscriber (checked in Redis itself); connection ids
 * carry distinct node numbers. */
#include "cluster_util.h"

static redis_proc *redis;
static tsrv *A, *B, *C;

static int setup(void **state) {
    (void)state;
    redis = rp_start(NULL);
    if (!redis) return -1;
    const char *require[] = {"cluster.require=true", NULL};
    A = instance(redis->address, "d", require);
    B = instance(redis->address, "d", require);
    C = instance(redis->address, "d", require);
    if (!A || !B || !C) return -1;
    return WAIT_UNTIL(cluster_up(A) && cluster_up(B) && cluster_up(C), 5000) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    int dbl = tsrv_free(A) + tsrv_free(B) + tsrv_free(C);
    rp_free(redis);
    return dbl ? -1 : 0;
}

static void ids_carry_distinct_node_numbers(void **state) {
    (void)state;
    client a = open_user(A, NULL), b = open_user(B, NULL), c = open_user(C, NULL);
    unsigned na = (unsigned)(a.id >> 48), nb = (unsigned)(b.id >> 48), nc = (unsigned)(c.id >> 48);
    assert_true(na && nb && nc);
    assert_true(na != nb && nb != nc && na != nc);
    /* cluster.require: ready only with the cluster up, which it is. */
    int ready = 0;
    assert_int_equal(wsg_server_ready(A->srv, &ready), WSG_OK);
    assert_int_equal(ready, 1);
    assert_int_equal(tsrv_log_count(A, "cluster_start"), 1);
    assert_int_equal(tsrv_log_count(A, "cluster_up"), 1);
    wsc_free(a.c);
    wsc_free(b.c);
    wsc_free(c.c);
}

static void publish_reaches_every_instance_once(void **state) {
    (void)state;
    client a = open_user(A, NULL), b = open_user(B, NULL), c = open_user(C, NULL);
    assert_int_equal(wsg_conn_subscribe(A->srv, a.id, "news"), WSG_OK);
    assert_int_equal(wsg_conn_subscribe(B->srv, b.id, "news"), WSG_OK);
    assert_true(WAIT_UNTIL(numsub(redis, "d:t:news") == 2, 2000));
    long long sent = tsrv_metric(A, "wsgate_cluster_published_total");
    assert_int_equal(wsg_server_publish(A->srv, "news", WSG_MSG_TEXT, "from A", 6), WSG_OK);
    expect_text(a.c, "from A");
    expect_text(b.c, "from A");
    /* One PUBLISH for the whole cluster. */
    assert_int_equal(tsrv_metric(A, "wsgate_cluster_published_total"), sent + 1);
    /* C has no subscriber: it publishes all the same, and hears nothing. */
    assert_int_equal(wsg_server_publish(C->srv, "news", WSG_MSG_TEXT, "from C", 6), WSG_OK);
    expect_text(a.c, "from C");
    expect_text(b.c, "from C");
    expect_nothing(a.c, 150);  /* no duplicate of A's own publish came back */
    expect_nothing(b.c, 1);
    expect_nothing(c.c, 1);
    wsc_free(a.c);
    wsc_free(b.c);
    wsc_free(c.c);
    assert_true(WAIT_UNTIL(numsub(redis, "d:t:news") == 0, 2000));
}

static void channels_follow_local_subscribers(void **state) {
    (void)state;
    client a1 = open_user(A, NULL), a2 = open_user(A, NULL), b = open_user(B, NULL);
    assert_int_equal(rp_channel_count(redis, "d:t:*"), 0);
    for (int i = 0; i < 20; i++) {  /* churn: one channel, never one per client */
        assert_int_equal(wsg_conn_subscribe(A->srv, a1.id, "room"), WSG_OK);
        assert_int_equal(wsg_conn_unsubscribe(A->srv, a1.id, "room"), WSG_OK);
    }
    assert_int_equal(wsg_conn_subscribe(A->srv, a1.id, "room"), WSG_OK);
    assert_int_equal(wsg_conn_subscribe(A->srv, a2.id, "room"), WSG_OK);
    assert_int_equal(wsg_conn_subscribe(B->srv, b.id, "room"), WSG_OK);
    assert_true(WAIT_UNTIL(numsub(redis, "d:t:room") == 2, 2000));
    assert_int_equal(rp_channel_count(redis, "d:t:*"), 1);
    /* A keeps listening while one local subscriber is left. */
    assert_int_equal(wsg_conn_unsubscribe(A->srv, a1.id, "room"), WSG_OK);
    tu_sleep_ms(100);
    assert_int_equal(numsub(redis, "d:t:room"), 2);
    /* Its last subscriber goes (the connection closes): A stops listening. */
    wsc_close(a2.c, 1000, 2000);
    assert_true(WAIT_UNTIL(numsub(redis, "d:t:room") == 1, 2000));
    assert_int_equal(wsg_server_publish(A->srv, "room", WSG_MSG_TEXT, "still", 5), WSG_OK);
    expect_text(b.c, "still");
    expect_nothing(a1.c, 100);
    assert_int_equal(wsg_conn_unsubscribe(B->srv, b.id, "room"), WSG_OK);
    assert_true(WAIT_UNTIL(rp_channel_count(redis, "d:t:*") == 0, 2000));
    wsc_free(a1.c);
    wsc_free(b.c);
}

static void users_and_connections_across_instances(void **state) {
    (void)state;
    client a = open_user(A, "alice"), c = open_user(C, "alice"), b = open_user(B, "bob");
    assert_true(WAIT_UNTIL(numsub(redis, "d:u:alice") == 2, 2000));
    assert_int_equal(numsub(redis, "d:u:bob"), 1);
    /* B has no alice: handed to the cluster, both of hers get it. */
    assert_int_equal(wsg_user_send(B->srv, "alice", WSG_MSG_TEXT, "hi alice", 8), WSG_OK);
    expect_text(a.c, "hi alice");
    expect_text(c.c, "hi alice");
    expect_nothing(b.c, 100);
    /* A has one of hers: no duplicate for it. */
    assert_int_equal(wsg_user_send(A->srv, "alice", WSG_MSG_BINARY, "\x01\x02", 2), WSG_OK);
    wsc_frame f;
    assert_int_equal(wsc_recv_message(a.c, &f, 3000), 1);
    assert_int_equal(f.opcode, 2);
    wsc_frame_free(&f);
    assert_int_equal(wsc_recv_message(c.c, &f, 3000), 1);
    assert_int_equal(f.opcode, 2);
    wsc_frame_free(&f);
    expect_nothing(a.c, 100);
    /* A user nobody has: WSG_OK (unknown here), nothing arrives anywhere. */
    assert_int_equal(wsg_user_send(A->srv, "nobody", WSG_MSG_TEXT, "x", 1), WSG_OK);
    /* A connection of another instance, by its id as it is. */
    assert_int_equal(wsg_conn_send(A->srv, b.id, WSG_MSG_TEXT, "to bob's conn", 13), WSG_OK);
    expect_text(b.c, "to bob's conn");
    expect_nothing(a.c, 50);
    expect_nothing(c.c, 1);
    /* A stale id of another node: handed over, dropped there, no error. */
    assert_int_equal(wsg_conn_send(A->srv, b.id + (1ull << 24), WSG_MSG_TEXT, "x", 1), WSG_OK);
    /* Closes: a connection elsewhere, then a user everywhere. */
    assert_int_equal(wsg_conn_close(C->srv, b.id, 4001, "moved"), WSG_OK);
    int code = 0;
    assert_int_equal(wsc_wait_closed(b.c, 3000, 1, &code), 1);
    assert_int_equal(code, 4001);
    assert_int_equal(wsg_user_close(B->srv, "alice", 4002, "bye"), WSG_OK);
    assert_int_equal(wsc_wait_closed(a.c, 3000, 1, &code), 1);
    assert_int_equal(code, 4002);
    assert_int_equal(wsc_wait_closed(c.c, 3000, 1, &code), 1);
    assert_int_equal(code, 4002);
    tsrv_close rec;
    assert_true(WAIT_UNTIL(tsrv_find_close(B, b.id, &rec), 2000));
    assert_int_equal(rec.cause, WSG_CAUSE_APP);
    assert_true(WAIT_UNTIL(numsub(redis, "d:u:alice") == 0, 2000));
    wsc_free(a.c);
    wsc_free(b.c);
    wsc_free(c.c);
}

static void calls_from_other_threads_go_through_the_loop(void **state) {
    (void)state;
    /* The test thread is not a service thread: every call above posted to
     * the mailbox. Here, in bulk, with nothing lost or duplicated. */
    client a = open_user(A, NULL), b = open_user(B, NULL);
    assert_int_equal(wsg_conn_subscribe(B->srv, b.id, "bulk"), WSG_OK);
    assert_true(WAIT_UNTIL(numsub(redis, "d:t:bulk") == 1, 2000));
    char msg[32];
    for (int i = 0; i < 200; i++) {
        snprintf(msg, sizeof msg, "m%d", i);
        assert_int_equal(wsg_server_publish(A->srv, "bulk", WSG_MSG_TEXT, msg, strlen(msg)), WSG_OK);
    }
    for (int i = 0; i < 200; i++) {
        snprintf(msg, sizeof msg, "m%d", i);
        expect_text(b.c, msg);  /* in order */
    }
    expect_nothing(b.c, 50);
    wsc_free(a.c);
    wsc_free(b.c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ids_carry_distinct_node_numbers),
        cmocka_unit_test(publish_reaches_every_instance_once),
        cmocka_unit_test(channels_follow_local_subscribers),
        cmocka_unit_test(users_and_connections_across_instances),
        cmocka_unit_test(calls_from_other_threads_go_through_the_loop),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
