/* Topics, users and sets of connections through the C ABI, with real
 * clients: who receives a publish (and who does not), subscriptions ending
 * with the connection, introspection, bad names, users' connections, a
 * broadcast that skips the sender, sends to a set of ids, and threads that
 * subscribe, publish and close at the same time. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_clients.h"
#include "testutil.h"
#include "wsclient.h"


static size_t subscribers(tsrv *t, const char *topic) {
    size_t n = 99;
    assert_int_equal(wsg_topic_subscribers(t->srv, topic, NULL, 0, &n), WSG_OK);
    return n;
}

static void publish_reaches_subscribers_only(void **state) {
    (void)state;
    tsrv *t = tsrv_start(NULL, 0);
    assert_non_null(t);
    client a = open_client(t, NULL), b = open_client(t, NULL), c = open_client(t, NULL);
    assert_int_equal(wsg_conn_subscribe(t->srv, a.id, "room:a"), WSG_OK);
    assert_int_equal(wsg_conn_subscribe(t->srv, b.id, "room:a"), WSG_OK);
    assert_int_equal(wsg_conn_subscribe(t->srv, b.id, "room:a"), WSG_OK); /* twice: harmless */
    assert_int_equal(wsg_conn_subscribe(t->srv, c.id, "room:b"), WSG_OK);
    assert_true(WAIT_UNTIL(subscribers(t, "room:a") == 2 && subscribers(t, "room:b") == 1, 3000));
    assert_int_equal(wsg_server_publish(t->srv, "room:a", WSG_MSG_TEXT, "for a", 5), WSG_OK);
    assert_int_equal(wsg_server_publish(t->srv, "room:b", WSG_MSG_TEXT, "for b", 5), WSG_OK);
    /* Nobody follows it: not an error. */
    assert_int_equal(wsg_server_publish(t->srv, "room:empty", WSG_MSG_TEXT, "lost", 4), WSG_OK);
    expect_text(a.c, "for a");
    expect_text(b.c, "for a"); /* once, although it subscribed twice */
    expect_text(c.c, "for b"); /* the first thing c got is its own room's */

    /* Introspection: ids and the topics in the connection info. */
    wsg_conn_id ids[4] = {0};
    size_t n = 0;
    assert_int_equal(wsg_topic_subscribers(t->srv, "room:a", ids, 4, &n), WSG_OK);
    assert_int_equal(n, 2);
    assert_true((ids[0] == a.id && ids[1] == b.id) || (ids[0] == b.id && ids[1] == a.id));
    assert_int_equal(wsg_conn_subscribe(t->srv, a.id, "news"), WSG_OK);
    assert_true(WAIT_UNTIL(subscribers(t, "news") == 1, 3000));
    wsg_conn_info *info;
    assert_int_equal(wsg_conn_info_get(t->srv, a.id, &info), WSG_OK);
    size_t nt = 0;
    assert_int_equal(wsg_conn_info_topic_count(info, &nt), WSG_OK);
    assert_int_equal(nt, 2);
    const char *t0, *t1;
    assert_int_equal(wsg_conn_info_topic(info, 0, &t0), WSG_OK);
    assert_int_equal(wsg_conn_info_topic(info, 1, &t1), WSG_OK);
    assert_true((!strcmp(t0, "room:a") && !strcmp(t1, "news")) || (!strcmp(t0, "news") && !strcmp(t1, "room:a")));
    assert_int_equal(wsg_conn_info_topic(info, 2, &t0), WSG_EINVAL);
    wsg_conn_info_free(info);

    /* Unsubscribe: b no longer gets room:a. */
    assert_int_equal(wsg_conn_unsubscribe(t->srv, b.id, "room:a"), WSG_OK);
    assert_int_equal(wsg_conn_unsubscribe(t->srv, b.id, "never"), WSG_OK);
    assert_true(WAIT_UNTIL(subscribers(t, "room:a") == 1, 3000));
    assert_int_equal(wsg_server_publish(t->srv, "room:a", WSG_MSG_BINARY, "x", 1), WSG_OK);
    assert_int_equal(wsg_conn_send(t->srv, b.id, WSG_MSG_TEXT, "direct", 6), WSG_OK);
    expect_text(b.c, "direct");

    /* A closed connection leaves every topic; its id stays harmless. */
    int before = tsrv_closes(t);
    assert_int_equal(wsc_close(a.c, 1000, 3000), 1000);
    assert_true(WAIT_UNTIL(tsrv_closes(t) == before + 1 && subscribers(t, "room:a") == 0, 3000));
    assert_int_equal(subscribers(t, "news"), 0);
    assert_int_equal(wsg_conn_subscribe(t->srv, a.id, "room:a"), WSG_ENOTFOUND);
    assert_int_equal(wsg_server_publish(t->srv, "room:a", WSG_MSG_TEXT, "nobody", 6), WSG_OK);
    wsc_free(b.c);
    wsc_free(c.c);
    assert_int_equal(tsrv_free(t), 0);
}

static void bad_topic_names_are_refused(void **state) {
    (void)state;
    tsrv *t = tsrv_start(NULL, 0);
    assert_non_null(t);
    client a = open_client(t, NULL);
    char big[WSG_TOPIC_MAX + 2];
    memset(big, 't', sizeof big);
    big[WSG_TOPIC_MAX + 1] = 0; /* 256 bytes */
    assert_int_equal(wsg_conn_subscribe(t->srv, a.id, big), WSG_EINVAL);
    assert_non_null(strstr(wsg_last_error(), "255"));
    big[WSG_TOPIC_MAX] = 0; /* exactly 255: fine */
    assert_int_equal(wsg_conn_subscribe(t->srv, a.id, big), WSG_OK);
    assert_int_equal(wsg_conn_subscribe(t->srv, a.id, ""), WSG_EINVAL);
    assert_int_equal(wsg_conn_subscribe(t->srv, a.id, NULL), WSG_EINVAL);
    assert_int_equal(wsg_conn_subscribe(t->srv, a.id, "bad\xff"), WSG_EINVAL);
    assert_non_null(strstr(wsg_last_error(), "UTF-8"));
    assert_int_equal(wsg_server_publish(t->srv, "", WSG_MSG_TEXT, "x", 1), WSG_EINVAL);
    assert_int_equal(wsg_server_publish(t->srv, "ok", (wsg_msg_type)9, "x", 1), WSG_EINVAL);
    assert_int_equal(wsg_server_publish(NULL, "ok", WSG_MSG_TEXT, "x", 1), WSG_EINVAL);
    size_t n;
    assert_int_equal(wsg_topic_subscribers(t->srv, "ok", NULL, 3, &n), WSG_EINVAL);
    assert_int_equal(wsg_topic_subscribers(t->srv, "ok", NULL, 0, NULL), WSG_EINVAL);
    assert_true(WAIT_UNTIL(subscribers(t, big) == 1, 3000));
    wsc_free(a.c);
    assert_int_equal(tsrv_free(t), 0);
}

static void broadcast_except_and_send_many(void **state) {
    (void)state;
    tsrv *t = tsrv_start(NULL, 0);
    assert_non_null(t);
    client a = open_client(t, NULL), b = open_client(t, NULL), c = open_client(t, NULL);
    assert_int_equal(wsg_server_broadcast_except(t->srv, a.id, WSG_MSG_TEXT, "not for a", 9), WSG_OK);
    expect_text(b.c, "not for a");
    expect_text(c.c, "not for a");
    /* A set of ids, one of them stale: the others get it once. */
    wsg_conn_id set[3] = {a.id, c.id, (wsg_conn_id)0xdead00000001ull};
    assert_int_equal(wsg_conn_send_many(t->srv, set, 3, WSG_MSG_TEXT, "to a and c", 10), WSG_OK);
    expect_text(a.c, "to a and c"); /* a's first message: the broadcast skipped it */
    expect_text(c.c, "to a and c");
    assert_int_equal(wsg_conn_send_many(t->srv, NULL, 2, WSG_MSG_TEXT, "x", 1), WSG_EINVAL);
    assert_int_equal(wsg_conn_send_many(t->srv, NULL, 0, WSG_MSG_TEXT, "x", 1), WSG_OK);
    assert_int_equal(wsg_server_broadcast_except(t->srv, 0, WSG_MSG_TEXT, "all", 3), WSG_OK);
    expect_text(a.c, "all");
    expect_text(b.c, "all");
    expect_text(c.c, "all");
    wsc_free(a.c);
    wsc_free(b.c);
    wsc_free(c.c);
    assert_int_equal(tsrv_free(t), 0);
}

/* ---- users: an authenticator that takes the user from a header ---- */

static void user_from_header(wsg_server *s, wsg_auth_request *req, void *user) {
    (void)s;
    (void)user;
    const char *who;
    if (wsg_auth_request_header(req, "x-user", &who) == WSG_OK)
        wsg_auth_accept(req, who);
    else
        wsg_auth_refuse(req, 401, "no x-user");
}

static tsrv *user_server(void) {
    const char *settings[] = {"auth.mode=callback", NULL};
    return tsrv_start_auth(settings, 0, user_from_header);
}

static size_t user_conns(tsrv *t, const char *user) {
    size_t n = 99;
    assert_int_equal(wsg_user_conn_ids(t->srv, user, NULL, 0, &n), WSG_OK);
    return n;
}

static void users_get_their_messages(void **state) {
    (void)state;
    tsrv *t = user_server();
    assert_non_null(t);
    client a1 = open_client(t, "x-user: alice\r\n"), a2 = open_client(t, "x-user: alice\r\n");
    client b = open_client(t, "x-user: bob\r\n");
    assert_int_equal(user_conns(t, "alice"), 2);
    assert_int_equal(user_conns(t, "bob"), 1);
    assert_int_equal(user_conns(t, "carol"), 0);
    wsg_conn_id ids[4];
    size_t n = 0;
    assert_int_equal(wsg_user_conn_ids(t->srv, "alice", ids, 4, &n), WSG_OK);
    assert_int_equal(n, 2);
    assert_true((ids[0] == a1.id && ids[1] == a2.id) || (ids[0] == a2.id && ids[1] == a1.id));

    assert_int_equal(wsg_user_send(t->srv, "alice", WSG_MSG_TEXT, "hi alice", 8), WSG_OK);
    expect_text(a1.c, "hi alice");
    expect_text(a2.c, "hi alice");
    assert_int_equal(wsg_user_send(t->srv, "carol", WSG_MSG_TEXT, "x", 1), WSG_ENOTFOUND);
    assert_non_null(strstr(wsg_last_error(), "carol"));
    assert_int_equal(wsg_user_send(t->srv, "", WSG_MSG_TEXT, "x", 1), WSG_EINVAL);
    assert_int_equal(wsg_user_send(t->srv, NULL, WSG_MSG_TEXT, "x", 1), WSG_EINVAL);
    assert_int_equal(wsg_user_close(t->srv, "alice", 5000, NULL), WSG_EINVAL);
    assert_int_equal(wsg_user_send(t->srv, "bob", WSG_MSG_TEXT, "hi bob", 6), WSG_OK);
    expect_text(b.c, "hi bob"); /* bob's first message: none of alice's */

    /* Closing a user closes each of its connections (cause app). */
    int before = tsrv_closes(t);
    assert_int_equal(wsg_user_close(t->srv, "alice", 4001, "logged out"), WSG_OK);
    int code1 = 0, code2 = 0;
    assert_int_equal(wsc_wait_closed(a1.c, 3000, 1, &code1), 1);
    assert_int_equal(wsc_wait_closed(a2.c, 3000, 1, &code2), 1);
    assert_int_equal(code1, 4001);
    assert_int_equal(code2, 4001);
    assert_true(WAIT_UNTIL(tsrv_closes(t) == before + 2 && user_conns(t, "alice") == 0, 3000));
    tsrv_close r;
    assert_int_equal(tsrv_find_close(t, a1.id, &r), 1);
    assert_int_equal(r.cause, WSG_CAUSE_APP);
    assert_string_equal(r.reason, "logged out");
    assert_int_equal(wsg_user_close(t->srv, "alice", 1000, NULL), WSG_ENOTFOUND);
    assert_int_equal(user_conns(t, "bob"), 1);
    wsc_free(a1.c);
    wsc_free(a2.c);
    wsc_free(b.c);
    assert_int_equal(tsrv_free(t), 0);
}

/* ---- threads: subscribe, publish and close at once (TSan runs this) ---- */

typedef struct {
    tsrv *t;
    atomic_int stop;
    wsg_conn_id *ids;
    int nids;
} churn;

static void *publisher(void *arg) {
    churn *k = arg;
    char topic[16];
    for (int i = 0; !atomic_load(&k->stop) && i < 20000; i++) {
        snprintf(topic, sizeof topic, "t%d", i % 8);
        wsg_status st = wsg_server_publish(k->t->srv, topic, WSG_MSG_TEXT, "m", 1);
        if (st != WSG_OK) return (void *)1;
    }
    return NULL;
}

static void *subscriber(void *arg) {
    churn *k = arg;
    char topic[16];
    for (int i = 0; !atomic_load(&k->stop) && i < 20000; i++) {
        wsg_conn_id id = k->ids[i % k->nids];
        snprintf(topic, sizeof topic, "t%d", i % 8);
        wsg_status st = (i & 1) ? wsg_conn_subscribe(k->t->srv, id, topic) : wsg_conn_unsubscribe(k->t->srv, id, topic);
        if (st != WSG_OK && st != WSG_ENOTFOUND && st != WSG_ECLOSED) return (void *)1;
        size_t n;
        if (wsg_topic_subscribers(k->t->srv, topic, NULL, 0, &n) != WSG_OK) return (void *)1;
    }
    return NULL;
}

static void threads_subscribe_publish_and_close(void **state) {
    (void)state;
    tsrv *t = tsrv_start(NULL, 0);
    assert_non_null(t);
    enum { N = 8 };
    client cl[N];
    wsg_conn_id ids[N];
    for (int i = 0; i < N; i++) {
        cl[i] = open_client(t, NULL);
        ids[i] = cl[i].id;
        wsc_set_auto_pong(cl[i].c, 1);
    }
    churn k = {.t = t, .ids = ids, .nids = N};
    atomic_init(&k.stop, 0);
    pthread_t th[4];
    pthread_create(&th[0], NULL, publisher, &k);
    pthread_create(&th[1], NULL, publisher, &k);
    pthread_create(&th[2], NULL, subscriber, &k);
    pthread_create(&th[3], NULL, subscriber, &k);
    /* Meanwhile half the clients go away. */
    tu_sleep_ms(50);
    for (int i = 0; i < N / 2; i++) wsc_free(cl[i].c);
    tu_sleep_ms(200);
    atomic_store(&k.stop, 1);
    for (int i = 0; i < 4; i++) {
        void *rv;
        pthread_join(th[i], &rv);
        assert_null(rv);
    }
    assert_true(WAIT_UNTIL(tu_conn_count(t->srv) == N / 2, 5000));
    for (int i = N / 2; i < N; i++) wsc_free(cl[i].c);
    assert_true(WAIT_UNTIL(tu_conn_count(t->srv) == 0, 5000));
    for (int i = 0; i < 8; i++) {
        char topic[16];
        snprintf(topic, sizeof topic, "t%d", i);
        assert_int_equal(subscribers(t, topic), 0);
    }
    assert_int_equal(tsrv_free(t), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(publish_reaches_subscribers_only),
        cmocka_unit_test(bad_topic_names_are_refused),
        cmocka_unit_test(broadcast_except_and_send_many),
        cmocka_unit_test(users_get_their_messages),
        cmocka_unit_test(threads_subscribe_publish_and_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
