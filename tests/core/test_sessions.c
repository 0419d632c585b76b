/* Session data without a cluster (the in-memory store of one instance) and
 * the completions every asynchronous call can be waited on with:
 *   - set, get, delete, replace; absent and expired keys (WSG_ENOTFOUND);
 *   - bad arguments are refused at once and never answered;
 *   - wsg_completion_wait: WSG_ETIMEOUT before the answer, WSG_EBUSY on the
 *     service thread, a completion waited on before its call is made;
 *   - a completion freed before its answer (ASan: no leak, no use after free);
 *   - the answer never runs inside the call, even on the service thread
 *     (presence too);
 *   - a stop with calls pending answers each exactly once (WSG_ESTATE for
 *     those it did not carry out). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "async_results.h"
#include "test_clients.h"
#include "testutil.h"
#include "wsclient.h"

/* A server on 127.0.0.1:0 that listens (calls are accepted and queued) but
 * whose loop does not run yet: nothing is answered until wsg_server_start. */
static wsg_server *listening(const char *extra) {
    wsg_config *cfg = NULL;
    assert_int_equal(wsg_config_new(&cfg), WSG_OK);
    assert_int_equal(wsg_config_set_string(cfg, "listen.host", "127.0.0.1"), WSG_OK);
    assert_int_equal(wsg_config_set_int(cfg, "listen.port", 0), WSG_OK);
    assert_int_equal(wsg_config_set_string(cfg, "log.level", "error"), WSG_OK);
    if (extra) assert_int_equal(wsg_config_set_from_string(cfg, extra), WSG_OK);
    wsg_server *s = NULL;
    assert_int_equal(wsg_server_new(&s, cfg), WSG_OK);
    wsg_config_free(cfg);
    assert_int_equal(wsg_server_listen(s), WSG_OK);
    return s;
}

/* Waits for the completion and returns its result (never NULL). */
static const wsg_result *done(wsg_completion *c) {
    assert_int_equal(wsg_completion_wait(c, 3000), WSG_OK);
    const wsg_result *r = wsg_completion_result(c);
    assert_non_null(r);
    return r;
}

static void set_get_delete(void **state) {
    (void)state;
    tsrv *t = tsrv_start(NULL, 0);
    assert_non_null(t);
    wsg_completion *c = NULL;
    assert_int_equal(wsg_completion_new(&c), WSG_OK);
    assert_int_equal(wsg_session_set(t->srv, "user:1", "hello", 5, 0, wsg_completion_callback, c), WSG_OK);
    assert_int_equal(wsg_result_status(done(c)), WSG_OK);
    assert_string_equal(wsg_result_message(done(c)), "");
    const void *data = NULL;
    size_t len = 1;
    assert_int_equal(wsg_result_value(done(c), &data, &len), WSG_ENOTFOUND); /* a set has no value */
    assert_int_equal(wsg_result_count(done(c)), 0);
    wsg_completion_free(c);

    answers a;
    answers_init(&a);
    assert_int_equal(wsg_session_get(t->srv, "user:1", answers_cb, &a), WSG_OK);
    assert_int_equal(answers_wait(&a, 1, 3000), WSG_OK);
    assert_int_equal(a.has_value, 1);
    assert_int_equal(a.len, 5);
    assert_string_equal(a.value, "hello");
    assert_ptr_equal(a.server, t->srv);

    /* A set replaces the value (binary, with a NUL inside). */
    assert_int_equal(wsg_session_set(t->srv, "user:1", "a\0b", 3, 60000, NULL, NULL), WSG_OK);
    assert_int_equal(wsg_completion_new(&c), WSG_OK);
    assert_int_equal(wsg_session_get(t->srv, "user:1", wsg_completion_callback, c), WSG_OK);
    assert_int_equal(wsg_result_value(done(c), &data, &len), WSG_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(data, "a\0b", 3);
    assert_int_equal(((const char *)data)[3], 0); /* terminated for convenience */
    wsg_completion_free(c);

    /* An empty value is a value. */
    assert_int_equal(wsg_session_set(t->srv, "empty", NULL, 0, 0, NULL, NULL), WSG_OK);
    assert_int_equal(wsg_session_get(t->srv, "empty", answers_cb, &a), WSG_OK);
    assert_int_equal(answers_wait(&a, 2, 3000), WSG_OK);
    assert_int_equal(a.has_value, 1);
    assert_int_equal(a.len, 0);

    /* Delete; then absent; deleting an absent key is fine too. */
    assert_int_equal(wsg_session_delete(t->srv, "user:1", answers_cb, &a), WSG_OK);
    assert_int_equal(answers_wait(&a, 3, 3000), WSG_OK);
    assert_int_equal(wsg_session_delete(t->srv, "user:1", answers_cb, &a), WSG_OK);
    assert_int_equal(answers_wait(&a, 4, 3000), WSG_OK);
    assert_int_equal(wsg_session_get(t->srv, "user:1", answers_cb, &a), WSG_OK);
    assert_int_equal(answers_wait(&a, 5, 3000), WSG_ENOTFOUND);
    assert_int_equal(a.has_value, 0);
    assert_non_null(strstr(a.message, "no session data"));
    assert_int_equal(wsg_session_delete(t->srv, "never", NULL, NULL), WSG_OK);
    assert_int_equal(tsrv_free(t), 0);
    answers_destroy(&a);
}

static void ttl_expiry(void **state) {
    (void)state;
    /* A short default TTL, and a longer one given per call. */
    const char *settings[] = {"cluster.session_ttl_ms=1000", NULL};
    tsrv *t = tsrv_start(settings, 0);
    assert_non_null(t);
    answers a;
    answers_init(&a);
    assert_int_equal(wsg_session_set(t->srv, "short", "x", 1, 60, NULL, NULL), WSG_OK);
    assert_int_equal(wsg_session_set(t->srv, "default", "y", 1, 0, NULL, NULL), WSG_OK);
    assert_int_equal(wsg_session_set(t->srv, "long", "z", 1, 60000, NULL, NULL), WSG_OK);
    assert_int_equal(wsg_session_get(t->srv, "short", answers_cb, &a), WSG_OK);
    assert_int_equal(answers_wait(&a, 1, 3000), WSG_OK); /* not yet expired */
    tu_sleep_ms(150);
    assert_int_equal(wsg_session_get(t->srv, "short", answers_cb, &a), WSG_OK);
    assert_int_equal(answers_wait(&a, 2, 3000), WSG_ENOTFOUND);
    assert_int_equal(wsg_session_get(t->srv, "default", answers_cb, &a), WSG_OK);
    assert_int_equal(answers_wait(&a, 3, 3000), WSG_OK);
    tu_sleep_ms(1000);
    assert_int_equal(wsg_session_get(t->srv, "default", answers_cb, &a), WSG_OK);
    assert_int_equal(answers_wait(&a, 4, 3000), WSG_ENOTFOUND);
    assert_int_equal(wsg_session_get(t->srv, "long", answers_cb, &a), WSG_OK);
    assert_int_equal(answers_wait(&a, 5, 3000), WSG_OK);
    assert_string_equal(a.value, "z");
    /* A set starts the TTL again. */
    assert_int_equal(wsg_session_set(t->srv, "again", "1", 1, 150, NULL, NULL), WSG_OK);
    tu_sleep_ms(100);
    assert_int_equal(wsg_session_set(t->srv, "again", "2", 1, 150, NULL, NULL), WSG_OK);
    tu_sleep_ms(100);
    assert_int_equal(wsg_session_get(t->srv, "again", answers_cb, &a), WSG_OK);
    assert_int_equal(answers_wait(&a, 6, 3000), WSG_OK);
    assert_string_equal(a.value, "2");
    assert_int_equal(tsrv_free(t), 0);
    answers_destroy(&a);
}

static void bad_arguments(void **state) {
    (void)state;
    const char *settings[] = {"cluster.session_max_bytes=16", NULL};
    tsrv *t = tsrv_start(settings, 0);
    assert_non_null(t);
    answers a;
    answers_init(&a);
    char key[WSG_SESSION_KEY_MAX + 2];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = 0; /* 256 bytes */
    assert_int_equal(wsg_session_set(t->srv, key, "v", 1, 0, answers_cb, &a), WSG_EINVAL);
    assert_non_null(strstr(wsg_last_error(), "1..255"));
    key[WSG_SESSION_KEY_MAX] = 0; /* 255: the longest */
    assert_int_equal(wsg_session_set(t->srv, key, "v", 1, 0, answers_cb, &a), WSG_OK);
    assert_int_equal(answers_wait(&a, 1, 3000), WSG_OK);
    assert_int_equal(wsg_session_get(t->srv, "", answers_cb, &a), WSG_EINVAL);
    assert_int_equal(wsg_session_get(t->srv, NULL, answers_cb, &a), WSG_EINVAL);
    assert_int_equal(wsg_session_delete(t->srv, NULL, NULL, NULL), WSG_EINVAL);
    assert_int_equal(wsg_session_get(t->srv, "k", NULL, NULL), WSG_EINVAL);
    assert_non_null(strstr(wsg_last_error(), "fn"));
    assert_int_equal(wsg_session_set(t->srv, "k", NULL, 3, 0, answers_cb, &a), WSG_EINVAL);
    assert_int_equal(wsg_session_set(t->srv, "k", "v", 1, -1, answers_cb, &a), WSG_EINVAL);
    assert_int_equal(wsg_session_set(t->srv, "k", "v", 1, INT64_MAX, answers_cb, &a), WSG_EINVAL);
    assert_int_equal(wsg_session_set(NULL, "k", "v", 1, 0, answers_cb, &a), WSG_EINVAL);
    assert_int_equal(wsg_session_get(NULL, "k", answers_cb, &a), WSG_EINVAL);
    assert_int_equal(wsg_session_delete(NULL, "k", answers_cb, &a), WSG_EINVAL);
    /* cluster.session_max_bytes: 16 fits, 17 does not. */
    assert_int_equal(wsg_session_set(t->srv, "k", "0123456789abcdefX", 17, 0, answers_cb, &a), WSG_ELIMIT);
    assert_non_null(strstr(wsg_last_error(), "cluster.session_max_bytes"));
    assert_int_equal(wsg_session_set(t->srv, "k", "0123456789abcdef", 16, 0, answers_cb, &a), WSG_OK);
    assert_int_equal(answers_wait(&a, 2, 3000), WSG_OK);
    /* A refused call is never answered, and changed nothing. */
    tu_sleep_ms(50);
    assert_int_equal(answers_calls(&a), 2);
    assert_int_equal(wsg_session_get(t->srv, "k", answers_cb, &a), WSG_OK);
    assert_int_equal(answers_wait(&a, 3, 3000), WSG_OK);
    assert_string_equal(a.value, "0123456789abcdef");
    assert_int_equal(tsrv_free(t), 0);
    /* Stopped: not running, not answered. */
    wsg_server *idle = NULL;
    assert_int_equal(wsg_server_new(&idle, NULL), WSG_OK);
    assert_int_equal(wsg_session_get(idle, "k", answers_cb, &a), WSG_ESTATE);
    wsg_server_free(idle);
    assert_int_equal(answers_calls(&a), 3);
    answers_destroy(&a);
}

static void results_and_completions_invalid(void **state) {
    (void)state;
    const void *data;
    size_t len, index_count;
    assert_int_equal(wsg_result_status(NULL), WSG_EINVAL);
    assert_non_null(wsg_result_message(NULL));
    assert_int_equal(wsg_result_value(NULL, &data, &len), WSG_EINVAL);
    assert_int_equal(wsg_result_count(NULL), 0);
    assert_int_equal(wsg_result_presence(NULL, 0, NULL, NULL, NULL), WSG_EINVAL);
    assert_int_equal(wsg_completion_new(NULL), WSG_EINVAL);
    assert_int_equal(wsg_completion_wait(NULL, 0), WSG_EINVAL);
    assert_null(wsg_completion_result(NULL));
    wsg_completion_free(NULL);
    /* A completion no call was made with (yet): not answered. */
    wsg_completion *c = NULL;
    assert_int_equal(wsg_completion_new(&c), WSG_OK);
    assert_int_equal(wsg_completion_wait(c, 0), WSG_ETIMEOUT);
    assert_int_equal(wsg_completion_wait(c, 10), WSG_ETIMEOUT);
    assert_null(wsg_completion_result(c));

    wsg_server *s = listening(NULL);
    assert_int_equal(wsg_session_get(s, "k", wsg_completion_callback, NULL), WSG_EINVAL);
    /* A refused call leaves the completion unused: a later call may use it. */
    assert_int_equal(wsg_session_get(s, "", wsg_completion_callback, c), WSG_EINVAL);
    assert_int_equal(wsg_completion_wait(c, 0), WSG_ETIMEOUT);
    assert_int_equal(wsg_session_get(s, "k", wsg_completion_callback, c), WSG_OK);
    /* One call per completion. */
    assert_int_equal(wsg_session_get(s, "k", wsg_completion_callback, c), WSG_EINVAL);
    assert_non_null(strstr(wsg_last_error(), "one per call"));
    assert_int_equal(wsg_server_start(s), WSG_OK);
    const wsg_result *r = done(c);
    assert_int_equal(wsg_result_status(r), WSG_ENOTFOUND);
    assert_int_equal(wsg_result_value(r, &data, NULL), WSG_EINVAL);
    assert_int_equal(wsg_result_value(r, NULL, &len), WSG_EINVAL);
    index_count = wsg_result_count(r);
    assert_int_equal(index_count, 0);
    assert_int_equal(wsg_result_presence(r, 0, NULL, NULL, NULL), WSG_EINVAL);
    wsg_completion_free(c);
    wsg_server_free(s);
}

/* wsg_completion_wait before the answer: the loop of `s` does not run yet. */
static void wait_times_out_before_the_answer(void **state) {
    (void)state;
    wsg_server *s = listening(NULL);
    wsg_completion *c = NULL;
    assert_int_equal(wsg_completion_new(&c), WSG_OK);
    assert_int_equal(wsg_session_set(s, "k", "v", 1, 0, wsg_completion_callback, c), WSG_OK);
    assert_int_equal(wsg_completion_wait(c, 0), WSG_ETIMEOUT);
    assert_null(wsg_completion_result(c));
    const int64_t t0 = tu_now_ms();
    assert_int_equal(wsg_completion_wait(c, 50), WSG_ETIMEOUT);
    assert_true(tu_now_ms() - t0 >= 45);
    assert_non_null(strstr(wsg_last_error(), "50 ms"));
    assert_int_equal(wsg_server_start(s), WSG_OK);
    assert_int_equal(wsg_completion_wait(c, -1), WSG_OK);
    assert_int_equal(wsg_result_status(wsg_completion_result(c)), WSG_OK);
    /* Answered: waiting again is at once. */
    assert_int_equal(wsg_completion_wait(c, 0), WSG_OK);
    wsg_completion_free(c);
    wsg_server_free(s);
}

/* Freed before the answer: the answer is discarded when it comes (ASan
 * checks that nothing leaks and nothing freed is touched). */
static void free_before_the_answer(void **state) {
    (void)state;
    wsg_server *s = listening(NULL);
    wsg_completion *c[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(wsg_completion_new(&c[i]), WSG_OK);
        assert_int_equal(wsg_session_get(s, "k", wsg_completion_callback, c[i]), WSG_OK);
    }
    wsg_completion_free(c[0]);
    wsg_completion_free(c[1]);
    assert_int_equal(wsg_server_start(s), WSG_OK);
    assert_int_equal(wsg_completion_wait(c[2], 3000), WSG_OK); /* after the two others */
    wsg_completion_free(c[2]);
    /* Freed before a stop answers it: discarded the same way. */
    wsg_completion *late = NULL;
    assert_int_equal(wsg_completion_new(&late), WSG_OK);
    wsg_server_free(s);
    s = listening(NULL);
    assert_int_equal(wsg_session_get(s, "k", wsg_completion_callback, late), WSG_OK);
    wsg_completion_free(late);
    wsg_server_free(s);
}

/* ---- on the service thread: a handler makes a call and waits */

typedef struct {
    wsg_completion *c;
    int wait_status;   /* wsg_completion_wait inside the handler */
    int answered_in_call; /* the callback ran inside wsg_session_get */
    int presence_in_call; /* the same for wsg_topic_presence (answered locally) */
    answers a, p;
} in_handler;

static void on_open_call(wsg_server *s, wsg_conn_id id, void *user) {
    (void)id;
    in_handler *h = (in_handler *)user;
    if (wsg_session_set(s, "h", "v", 1, 0, answers_cb, &h->a) != WSG_OK) return;
    h->answered_in_call = answers_calls(&h->a) != 0;
    if (wsg_topic_presence(s, "t", answers_cb, &h->p) != WSG_OK) return;
    h->presence_in_call = answers_calls(&h->p) != 0;
    if (wsg_session_get(s, "h", wsg_completion_callback, h->c) != WSG_OK) return;
    h->wait_status = (int)wsg_completion_wait(h->c, 100);
}

static void wait_on_the_service_thread(void **state) {
    (void)state;
    in_handler h;
    memset(&h, 0, sizeof h);
    h.wait_status = -1;
    answers_init(&h.a);
    answers_init(&h.p);
    assert_int_equal(wsg_completion_new(&h.c), WSG_OK);
    wsg_config *cfg = NULL;
    assert_int_equal(wsg_config_new(&cfg), WSG_OK);
    assert_int_equal(wsg_config_set_string(cfg, "listen.host", "127.0.0.1"), WSG_OK);
    assert_int_equal(wsg_config_set_int(cfg, "listen.port", 0), WSG_OK);
    assert_int_equal(wsg_config_set_string(cfg, "log.level", "error"), WSG_OK);
    wsg_server *s = NULL;
    assert_int_equal(wsg_server_new(&s, cfg), WSG_OK);
    wsg_config_free(cfg);
    assert_int_equal(wsg_server_on_open(s, on_open_call, &h, NULL), WSG_OK);
    assert_int_equal(wsg_server_start(s), WSG_OK);
    int port = 0, status = 0;
    assert_int_equal(wsg_server_port(s, &port), WSG_OK);
    wsc *client = wsc_connect("127.0.0.1", port, "/", NULL, 3000, &status);
    assert_non_null(client);
    /* This thread may wait, also before the handler made the call (the
     * client may see the upgrade before on_open ran): the answer comes on
     * the service thread. */
    assert_int_equal(wsg_completion_wait(h.c, 3000), WSG_OK);
    assert_int_equal(h.wait_status, WSG_EBUSY);
    assert_int_equal(h.answered_in_call, 0);
    assert_int_equal(h.presence_in_call, 0);
    assert_int_equal(answers_wait(&h.a, 1, 3000), WSG_OK);
    assert_int_equal(answers_wait(&h.p, 1, 3000), WSG_OK);
    const void *data;
    size_t len;
    assert_int_equal(wsg_result_value(wsg_completion_result(h.c), &data, &len), WSG_OK);
    assert_memory_equal(data, "v", 1);
    wsc_free(client);
    wsg_server_free(s);
    wsg_completion_free(h.c);
    answers_destroy(&h.a);
    answers_destroy(&h.p);
}

/* ---- stop with calls pending: each callback once */

#define PENDING 200

static void stop_answers_pending_calls_once(void **state) {
    (void)state;
    /* Not started: everything is still in the mailbox at the stop. */
    wsg_server *s = listening(NULL);
    once o[PENDING];
    memset(o, 0, sizeof o);
    wsg_completion *c = NULL;
    assert_int_equal(wsg_completion_new(&c), WSG_OK);
    for (int i = 0; i < PENDING; i++)
        assert_int_equal(wsg_session_set(s, "k", "v", 1, 0, once_cb, &o[i]), WSG_OK);
    assert_int_equal(wsg_session_get(s, "k", wsg_completion_callback, c), WSG_OK);
    assert_int_equal(wsg_server_stop(s), WSG_OK);
    for (int i = 0; i < PENDING; i++) {
        assert_int_equal(once_calls(&o[i]), 1);
        assert_int_equal(o[i].status, WSG_ESTATE);
    }
    assert_int_equal(wsg_completion_wait(c, 0), WSG_OK);
    assert_int_equal(wsg_result_status(wsg_completion_result(c)), WSG_ESTATE);
    assert_non_null(strstr(wsg_result_message(wsg_completion_result(c)), "stopped"));
    /* Stopped: a new call is refused (and never answered). */
    once extra = {0, 0};
    assert_int_equal(wsg_session_get(s, "k", once_cb, &extra), WSG_ESTATE);
    wsg_server_free(s);
    wsg_completion_free(c);
    assert_int_equal(once_calls(&extra), 0);

    /* Running: calls race the stop; each is answered once, OK or WSG_ESTATE. */
    tsrv *t = tsrv_start(NULL, 0);
    assert_non_null(t);
    memset(o, 0, sizeof o);
    int accepted = 0;
    for (int i = 0; i < PENDING; i++)
        if (wsg_session_set(t->srv, "k", "v", 1, 0, once_cb, &o[i]) == WSG_OK) accepted++;
    assert_int_equal(accepted, PENDING);
    assert_int_equal(tsrv_free(t), 0);
    for (int i = 0; i < PENDING; i++) {
        assert_int_equal(once_calls(&o[i]), 1);
        assert_true(o[i].status == WSG_OK || o[i].status == WSG_ESTATE);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(set_get_delete),
        cmocka_unit_test(ttl_expiry),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(results_and_completions_invalid),
        cmocka_unit_test(wait_times_out_before_the_answer),
        cmocka_unit_test(free_before_the_answer),
        cmocka_unit_test(wait_on_the_service_thread),
        cmocka_unit_test(stop_answers_pending_calls_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
