/* History without a cluster (cluster.history_topics on one instance): the
 * in-memory ring gives positions, wsg_conn_subscribe_from replays what was
 * missed then the live messages, too old / another epoch / ahead are
 * WSG_EGONE, the history hook shapes live and replayed messages alike; and
 * the position text and bad input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "async_results.h"
#include "history_util.h"
#include "test_clients.h"
#include "testutil.h"


/* Asks and waits for the answer; its status. */
static int subscribe_from(tsrv *t, wsg_conn_id id, const char *topic, const wsg_position *from, from_answer *a) {
    int before = from_calls(a);
    assert_int_equal(wsg_conn_subscribe_from(t->srv, id, topic, from, from_cb, a), WSG_OK);
    assert_true(WAIT_UNTIL(from_calls(a) == before + 1, 3000));
    return (int)a->status;
}

static void expect_positioned(wsc *c, uint64_t epoch, uint64_t offset, const char *payload) {
    wsg_position p;
    char got[256];
    assert_true(recv_positioned(c, 3000, &p, got, sizeof got));
    assert_true(p.epoch == epoch);
    if (p.offset != offset) fail_msg("offset %llu, expected %llu", (unsigned long long)p.offset, (unsigned long long)offset);
    assert_string_equal(got, payload);
}

static void in_memory_history(void **state) {
    (void)state;
    const char *settings[] = {"cluster.history_topics=h:*", "cluster.history_size=3", NULL};
    tsrv *t = history_server(settings, install_position_prefix);
    assert_non_null(t);
    client a = open_client(t, NULL);
    from_answer ans;
    from_answer_init(&ans);

    /* No history yet: position {0,0}; from the start is fine. */
    assert_int_equal(subscribe_from(t, a.id, "h:1", NULL, &ans), WSG_OK);
    assert_true(ans.has_position && ans.pos.epoch == 0 && ans.pos.offset == 0);
    const char *msgs[] = {"one", "two", "three", "four", "five"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(wsg_server_publish(t->srv, "h:1", WSG_MSG_TEXT, msgs[i], strlen(msgs[i])), WSG_OK);
    wsg_position first;
    char got[64];
    assert_true(recv_positioned(a.c, 3000, &first, got, sizeof got));
    assert_true(first.epoch != 0 && first.offset == 1);
    const uint64_t E = first.epoch;
    for (int i = 1; i < 5; i++) expect_positioned(a.c, E, (uint64_t)i + 1, msgs[i]);

    /* Another connection comes back from offset 3: gets 4 and 5, shaped
     * like the live ones, then the live ones. */
    client b = open_client(t, NULL);
    wsg_position from = {E, 3};
    assert_int_equal(subscribe_from(t, b.id, "h:1", &from, &ans), WSG_OK);
    assert_true(ans.pos.epoch == E && ans.pos.offset == 5);
    expect_positioned(b.c, E, 4, "four");
    expect_positioned(b.c, E, 5, "five");
    assert_int_equal(wsg_server_publish(t->srv, "h:1", WSG_MSG_TEXT, "six", 3), WSG_OK);
    expect_positioned(b.c, E, 6, "six");
    expect_positioned(a.c, E, 6, "six");

    /* Kept: 4..6. Too old, the start, another epoch, ahead: WSG_EGONE,
     * nothing replayed, still subscribed. */
    client c = open_client(t, NULL);
    from.offset = 2;
    assert_int_equal(subscribe_from(t, c.id, "h:1", &from, &ans), WSG_EGONE);
    assert_non_null(strstr(ans.message, "older than the oldest"));
    assert_false(ans.has_position);
    const wsg_position start = {0, 0};
    assert_int_equal(subscribe_from(t, c.id, "h:1", &start, &ans), WSG_EGONE);
    from.epoch = E ^ 2;
    from.offset = 5;
    assert_int_equal(subscribe_from(t, c.id, "h:1", &from, &ans), WSG_EGONE);
    assert_non_null(strstr(ans.message, "another epoch"));
    from.epoch = E;
    from.offset = 9;
    assert_int_equal(subscribe_from(t, c.id, "h:1", &from, &ans), WSG_EGONE);
    assert_non_null(strstr(ans.message, "ahead"));
    wsc_frame f;
    assert_int_equal(wsc_recv_message(c.c, &f, 100), 0);
    assert_int_equal(wsg_server_publish(t->srv, "h:1", WSG_MSG_TEXT, "seven", 5), WSG_OK);
    expect_positioned(c.c, E, 7, "seven");
    expect_positioned(a.c, E, 7, "seven");
    expect_positioned(b.c, E, 7, "seven");
    from.offset = 6;  /* the oldest kept minus one: fine */
    client d = open_client(t, NULL);
    assert_int_equal(subscribe_from(t, d.id, "h:1", &from, &ans), WSG_OK);
    expect_positioned(d.c, E, 7, "seven");
    /* Replays (b: 4 and 5, d: 7) and refusals are counted. */
    assert_int_equal(tsrv_metric(t, "wsgate_history_replayed_messages_total"), 3);
    assert_int_equal(tsrv_metric(t, "wsgate_history_gone_total"), 4);

    /* Another topic has its own history and epoch; a topic without history
     * is not positioned. */
    assert_int_equal(wsg_conn_subscribe(t->srv, a.id, "plain"), WSG_OK);
    assert_int_equal(wsg_server_publish(t->srv, "plain", WSG_MSG_TEXT, "p", 1), WSG_OK);
    expect_text(a.c, "p");

    wsc_free(a.c);
    wsc_free(b.c);
    wsc_free(c.c);
    wsc_free(d.c);
    assert_int_equal(tsrv_free(t), 0);
    pthread_mutex_destroy(&ans.mu);
}

/* cluster.history_ttl_ms without a publish: the history lapses, a
 * position of it is WSG_EGONE, the next publish starts a new epoch. */
static void lapses_after_ttl(void **state) {
    (void)state;
    const char *settings[] = {"cluster.history_topics=news", "cluster.history_ttl_ms=1000", NULL};
    tsrv *t = history_server(settings, install_position_prefix);
    assert_non_null(t);
    client a = open_client(t, NULL);
    from_answer ans;
    from_answer_init(&ans);
    assert_int_equal(subscribe_from(t, a.id, "news", NULL, &ans), WSG_OK);
    assert_int_equal(wsg_server_publish(t->srv, "news", WSG_MSG_TEXT, "old", 3), WSG_OK);
    wsg_position p;
    char got[64];
    assert_true(recv_positioned(a.c, 3000, &p, got, sizeof got));
    tu_sleep_ms(1100);
    client b = open_client(t, NULL);
    assert_int_equal(subscribe_from(t, b.id, "news", &p, &ans), WSG_EGONE);
    assert_non_null(strstr(ans.message, "no history now"));
    assert_int_equal(wsg_server_publish(t->srv, "news", WSG_MSG_TEXT, "new", 3), WSG_OK);
    wsg_position q;
    assert_true(recv_positioned(b.c, 3000, &q, got, sizeof got));
    assert_true(q.epoch != p.epoch && q.offset == 1);
    assert_string_equal(got, "new");
    wsc_free(a.c);
    wsc_free(b.c);
    assert_int_equal(tsrv_free(t), 0);
    pthread_mutex_destroy(&ans.mu);
}

static void bad_input(void **state) {
    (void)state;
    const char *settings[] = {"cluster.history_topics=news,h:*", NULL};
    tsrv *t = tsrv_start(settings, 0);
    assert_non_null(t);
    client a = open_client(t, NULL);
    wsg_position p = {1, 1};
    assert_int_equal(wsg_conn_subscribe_from(t->srv, a.id, "plain", &p, NULL, NULL), WSG_EINVAL);
    assert_non_null(strstr(wsg_last_error(), "cluster.history_topics"));
    assert_int_equal(wsg_conn_subscribe_from(t->srv, a.id, "newsx", &p, NULL, NULL), WSG_EINVAL);
    assert_int_equal(wsg_conn_subscribe_from(t->srv, a.id, NULL, &p, NULL, NULL), WSG_EINVAL);
    assert_int_equal(wsg_conn_subscribe_from(t->srv, a.id, "", &p, NULL, NULL), WSG_EINVAL);
    assert_int_equal(wsg_conn_subscribe_from(NULL, a.id, "news", &p, NULL, NULL), WSG_EINVAL);
    assert_int_equal(wsg_conn_subscribe_from(t->srv, a.id + 77, "news", &p, NULL, NULL), WSG_ENOTFOUND);
    /* fn may be NULL: subscribed all the same. */
    assert_int_equal(wsg_conn_subscribe_from(t->srv, a.id, "news", NULL, NULL, NULL), WSG_OK);
    assert_int_equal(wsg_server_publish(t->srv, "news", WSG_MSG_TEXT, "n", 1), WSG_OK);
    expect_text(a.c, "n");
    /* Results of other calls hold no position. */
    wsg_position out;
    assert_int_equal(wsg_result_position(NULL, &out), WSG_EINVAL);
    /* The hook only before listening. */
    assert_int_equal(wsg_server_on_history(t->srv, position_prefix, NULL, NULL), WSG_ESTATE);
    assert_int_equal(wsg_server_on_history(NULL, position_prefix, NULL, NULL), WSG_EINVAL);
    assert_int_equal(wsg_history_message_payload(NULL, NULL, NULL, NULL), WSG_EINVAL);
    assert_int_equal(wsg_history_message_set(NULL, "x", 1), WSG_EINVAL);
    wsc_free(a.c);
    assert_int_equal(tsrv_free(t), 0);
    /* A bad pattern list. */
    wsg_config *cfg;
    assert_int_equal(wsg_config_new(&cfg), WSG_OK);
    assert_int_equal(wsg_config_set_string(cfg, "cluster.history_topics", "a,,b"), WSG_EINVAL);
    assert_int_equal(wsg_config_set_string(cfg, "cluster.history_topics", "a*b"), WSG_EINVAL);
    assert_int_equal(wsg_config_set_string(cfg, "cluster.history_topics", "room:*,news"), WSG_OK);
    assert_int_equal(wsg_config_set_int(cfg, "cluster.history_size", 0), WSG_EINVAL);
    wsg_config_free(cfg);
}

/* A handler (service thread) that subscribes its connection "from" the
 * position in the message ("-": none) and publishes at once: the
 * subscription is in place before the call returns, and what the handler
 * publishes reaches the connection once, after the replay. */
static from_answer handler_answer;

static void subscribe_and_publish(wsg_server *s, wsg_conn_id id, wsg_msg_type type, const void *data, size_t len,
                                  void *user) {
    (void)type;
    (void)user;
    char text[64];
    snprintf(text, sizeof text, "%.*s", (int)len, (const char *)data);
    wsg_position from;
    const int has_from = wsg_position_parse(text, &from) == WSG_OK;
    wsg_status st = wsg_conn_subscribe_from(s, id, "h:s", has_from ? &from : NULL, from_cb, &handler_answer);
    if (st != WSG_OK) fail_msg("subscribe_from in a handler: %d", (int)st);
    char reply[80];
    int n = snprintf(reply, sizeof reply, "after %s", text);
    wsg_server_publish(s, "h:s", WSG_MSG_TEXT, reply, (size_t)n);
}

static void install_handler(wsg_server *srv) {
    install_position_prefix(srv);
    wsg_server_on_message(srv, subscribe_and_publish, NULL, NULL);
}

static void on_the_service_thread(void **state) {
    (void)state;
    const char *settings[] = {"cluster.history_topics=h:*", "cluster.history_size=10", NULL};
    tsrv *t = history_server(settings, install_handler);
    assert_non_null(t);
    from_answer_init(&handler_answer);
    client a = open_client(t, NULL);
    assert_int_equal(wsg_conn_subscribe(t->srv, a.id, "h:s"), WSG_OK);
    const char *msgs[] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(wsg_server_publish(t->srv, "h:s", WSG_MSG_TEXT, msgs[i], strlen(msgs[i])), WSG_OK);
    wsg_position first;
    char got[64];
    assert_true(recv_positioned(a.c, 3000, &first, got, sizeof got));
    const uint64_t E = first.epoch;
    expect_positioned(a.c, E, 2, "two");
    expect_positioned(a.c, E, 3, "three");

    /* Live only: what the handler publishes right after reaches it. */
    client b = open_client(t, NULL);
    assert_int_equal(wsc_send_text(b.c, "-"), 0);
    expect_positioned(b.c, E, 4, "after -");
    assert_true(WAIT_UNTIL(from_calls(&handler_answer) == 1, 3000));
    assert_int_equal(handler_answer.status, WSG_OK);

    /* From offset 1: two, three, and its own publish once, in order. */
    client c = open_client(t, NULL);
    char from[WSG_POSITION_TEXT_MAX + 8];
    snprintf(from, sizeof from, "%llu-1", (unsigned long long)E);
    assert_int_equal(wsc_send_text(c.c, from), 0);
    char after[80];
    snprintf(after, sizeof after, "after %s", from);
    expect_positioned(c.c, E, 2, "two");
    expect_positioned(c.c, E, 3, "three");
    expect_positioned(c.c, E, 4, "after -");
    expect_positioned(c.c, E, 5, after);
    assert_true(WAIT_UNTIL(from_calls(&handler_answer) == 2, 3000));
    assert_int_equal(handler_answer.status, WSG_OK);
    wsc_frame f;
    assert_int_equal(wsc_recv_message(c.c, &f, 100), 0);

    /* A position ahead: WSG_EGONE, and the live message held meanwhile
     * still comes. */
    client d = open_client(t, NULL);
    snprintf(from, sizeof from, "%llu-99", (unsigned long long)E);
    assert_int_equal(wsc_send_text(d.c, from), 0);
    snprintf(after, sizeof after, "after %s", from);
    expect_positioned(d.c, E, 6, after);
    assert_true(WAIT_UNTIL(from_calls(&handler_answer) == 3, 3000));
    assert_int_equal(handler_answer.status, WSG_EGONE);
    assert_int_equal(wsc_recv_message(d.c, &f, 100), 0);
    expect_positioned(a.c, E, 4, "after -");

    wsc_free(a.c);
    wsc_free(b.c);
    wsc_free(c.c);
    wsc_free(d.c);
    assert_int_equal(tsrv_free(t), 0);
    pthread_mutex_destroy(&handler_answer.mu);
}

static void position_text(void **state) {
    (void)state;
    char buf[WSG_POSITION_TEXT_MAX];
    wsg_position p = {UINT64_MAX, UINT64_MAX}, q;
    assert_int_equal(wsg_position_format(&p, buf, sizeof buf), WSG_OK);
    assert_string_equal(buf, "18446744073709551615-18446744073709551615");
    assert_int_equal(wsg_position_parse(buf, &q), WSG_OK);
    assert_true(q.epoch == p.epoch && q.offset == p.offset);
    assert_int_equal(wsg_position_format(&p, buf, 10), WSG_EINVAL);
    assert_int_equal(wsg_position_format(NULL, buf, sizeof buf), WSG_EINVAL);
    assert_int_equal(wsg_position_parse("0-0", &q), WSG_OK);
    assert_true(q.epoch == 0 && q.offset == 0);
    assert_int_equal(wsg_position_parse("12-3", &q), WSG_OK);
    assert_true(q.epoch == 12 && q.offset == 3);
    const char *bad[] = {"", "-", "12", "12-", "-3", "a-1", "1-b", "1-2-3", "01-2", "1-02", "1-0", "0-1",
                         " 1-2", "1-2 ", "18446744073709551616-1", "+1-2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (wsg_position_parse(bad[i], &q) != WSG_EINVAL) fail_msg("'%s' parsed", bad[i]);
    assert_int_equal(wsg_position_parse(NULL, &q), WSG_EINVAL);
    assert_int_equal(wsg_position_parse("1-2", NULL), WSG_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(in_memory_history),
        cmocka_unit_test(lapses_after_ttl),
        cmocka_unit_test(bad_input),
        cmocka_unit_test(position_text),
        cmocka_unit_test(on_the_service_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
