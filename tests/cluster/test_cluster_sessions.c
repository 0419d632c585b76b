/* Session data with the cluster, on a real Redis: written on one instance,
 * read on another (stored under PREFIX:s:KEY with its TTL), expired,
 * deleted; bad input refused at once; and when Redis fails: killed (every
 * call answered WSG_ECLUSTER at once, never from a local copy), frozen with
 * SIGSTOP (WSG_ECLUSTER within about cluster.command_timeout_ms, each
 * callback once), and a stop while Redis is frozen (WSG_ESTATE, once). */
#include "async_results.h"
#include "cluster_util.h"

/* The answer of one get on t, through a completion: its status, and the
 * value copied into out (cap bytes). */
static int get_value(tsrv *t, const char *key, char *out, size_t cap) {
    wsg_completion *c = NULL;
    assert_int_equal(wsg_completion_new(&c), WSG_OK);
    assert_int_equal(wsg_session_get(t->srv, key, wsg_completion_callback, c), WSG_OK);
    assert_int_equal(wsg_completion_wait(c, 3000), WSG_OK);
    const wsg_result *r = wsg_completion_result(c);
    int st = (int)wsg_result_status(r);
    const void *data;
    size_t len;
    out[0] = 0;
    if (wsg_result_value(r, &data, &len) == WSG_OK && len < cap) {
        memcpy(out, data, len);
        out[len] = 0;
    }
    wsg_completion_free(c);
    return st;
}

static int set_value(tsrv *t, const char *key, const char *value, int64_t ttl_ms) {
    wsg_completion *c = NULL;
    assert_int_equal(wsg_completion_new(&c), WSG_OK);
    assert_int_equal(wsg_session_set(t->srv, key, value, strlen(value), ttl_ms, wsg_completion_callback, c), WSG_OK);
    assert_int_equal(wsg_completion_wait(c, 3000), WSG_OK);
    int st = (int)wsg_result_status(wsg_completion_result(c));
    wsg_completion_free(c);
    return st;
}

static void shared_between_instances(void **state) {
    (void)state;
    redis_proc *redis = rp_start(NULL);
    assert_non_null(redis);
    const char *extra[] = {"cluster.session_max_bytes=64", NULL};
    tsrv *A = instance(redis->address, "s", extra), *B = instance(redis->address, "s", extra);
    assert_non_null(A);
    assert_non_null(B);
    assert_true(WAIT_UNTIL(cluster_up(A) && cluster_up(B), 5000));
    char buf[128];

    /* Written on A, read on B; in Redis under PREFIX:s:KEY with its TTL. */
    assert_int_equal(set_value(A, "user:7", "cart=3", 60000), WSG_OK);
    assert_int_equal(get_value(B, "user:7", buf, sizeof buf), WSG_OK);
    assert_string_equal(buf, "cart=3");
    const char *get[] = {"GET", "s:s:user:7"}, *pttl[] = {"PTTL", "s:s:user:7"};
    char *reply = rp_query(redis, 2, get);
    assert_non_null(reply);
    assert_string_equal(reply, "cart=3");
    free(reply);
    reply = rp_query(redis, 2, pttl);
    assert_non_null(reply);
    assert_true(atoll(reply) > 50000 && atoll(reply) <= 60000);
    free(reply);
    /* The default TTL (cluster.session_ttl_ms, a day). */
    assert_int_equal(set_value(B, "user:8", "x", 0), WSG_OK);
    const char *pttl8[] = {"PTTL", "s:s:user:8"};
    reply = rp_query(redis, 2, pttl8);
    assert_non_null(reply);
    assert_true(atoll(reply) > 86000000 && atoll(reply) <= 86400000);
    free(reply);

    /* Replaced on B, seen on A; deleted on B, absent on A. */
    assert_int_equal(set_value(B, "user:7", "cart=4", 60000), WSG_OK);
    assert_int_equal(get_value(A, "user:7", buf, sizeof buf), WSG_OK);
    assert_string_equal(buf, "cart=4");
    answers a;
    answers_init(&a);
    assert_int_equal(wsg_session_delete(B->srv, "user:7", answers_cb, &a), WSG_OK);
    assert_int_equal(answers_wait(&a, 1, 3000), WSG_OK);
    assert_int_equal(get_value(A, "user:7", buf, sizeof buf), WSG_ENOTFOUND);
    assert_int_equal(wsg_session_delete(A->srv, "user:7", answers_cb, &a), WSG_OK); /* absent: fine */
    assert_int_equal(answers_wait(&a, 2, 3000), WSG_OK);

    /* TTL: gone everywhere once it passed. */
    assert_int_equal(set_value(A, "brief", "y", 100), WSG_OK);
    assert_int_equal(get_value(B, "brief", buf, sizeof buf), WSG_OK);
    tu_sleep_ms(200);
    assert_int_equal(get_value(B, "brief", buf, sizeof buf), WSG_ENOTFOUND);
    assert_int_equal(get_value(A, "brief", buf, sizeof buf), WSG_ENOTFOUND);

    /* Bad input: refused at once, never answered. */
    char big[80];
    memset(big, 'v', sizeof big);
    assert_int_equal(wsg_session_set(A->srv, "k", big, sizeof big, 0, answers_cb, &a), WSG_ELIMIT);
    assert_int_equal(wsg_session_set(A->srv, "", "v", 1, 0, answers_cb, &a), WSG_EINVAL);
    assert_int_equal(wsg_session_get(A->srv, "k", NULL, NULL), WSG_EINVAL);
    /* A key of another type in Redis: Redis' error, as WSG_ECLUSTER. */
    const char *lpush[] = {"LPUSH", "s:s:list", "x"};
    reply = rp_query(redis, 3, lpush);
    free(reply);
    assert_int_equal(wsg_session_get(A->srv, "list", answers_cb, &a), WSG_OK);
    assert_int_equal(answers_wait(&a, 3, 3000), WSG_ECLUSTER);
    assert_non_null(strstr(a.message, "WRONGTYPE"));
    tu_sleep_ms(50);
    assert_int_equal(answers_calls(&a), 3);
    assert_true(cluster_up(A)); /* an error reply is no outage */

    assert_int_equal(tsrv_free(A), 0);
    assert_int_equal(tsrv_free(B), 0);
    rp_free(redis);
    answers_destroy(&a);
}

static void redis_killed(void **state) {
    (void)state;
    redis_proc *redis = rp_start(NULL);
    assert_non_null(redis);
    tsrv *A = instance(redis->address, "d", NULL);
    assert_non_null(A);
    assert_true(WAIT_UNTIL(cluster_up(A), 5000));
    char buf[64];
    assert_int_equal(set_value(A, "u", "v", 60000), WSG_OK);
    rp_kill(redis);
    assert_true(WAIT_UNTIL(!cluster_up(A), 3000));
    /* Accepted, answered WSG_ECLUSTER at once (no local copy), saying why. */
    answers a;
    answers_init(&a);
    const int64_t t0 = tu_now_ms();
    assert_int_equal(wsg_session_get(A->srv, "u", answers_cb, &a), WSG_OK);
    assert_int_equal(answers_wait(&a, 1, 3000), WSG_ECLUSTER);
    assert_true(tu_now_ms() - t0 < 500);
    assert_non_null(strstr(a.message, "cluster is down"));
    assert_int_equal(wsg_session_set(A->srv, "u", "w", 1, 0, answers_cb, &a), WSG_OK);
    assert_int_equal(answers_wait(&a, 2, 3000), WSG_ECLUSTER);
    assert_int_equal(wsg_session_delete(A->srv, "u", answers_cb, &a), WSG_OK);
    assert_int_equal(answers_wait(&a, 3, 3000), WSG_ECLUSTER);
    /* Back: works again (Redis restarted empty: no persistence). */
    assert_int_equal(rp_restart(redis), 0);
    assert_true(WAIT_UNTIL(cluster_up(A), 3000));
    assert_int_equal(get_value(A, "u", buf, sizeof buf), WSG_ENOTFOUND);
    assert_int_equal(set_value(A, "u", "again", 0), WSG_OK);
    assert_int_equal(get_value(A, "u", buf, sizeof buf), WSG_OK);
    assert_string_equal(buf, "again");
    tu_sleep_ms(50);
    assert_int_equal(answers_calls(&a), 3);
    assert_int_equal(tsrv_free(A), 0);
    rp_free(redis);
    answers_destroy(&a);
}

#define FROZEN_CALLS 20

static void redis_frozen(void **state) {
    (void)state;
    redis_proc *redis = rp_start(NULL);
    assert_non_null(redis);
    tsrv *A = instance(redis->address, "f", NULL); /* cluster.command_timeout_ms=500 */
    assert_non_null(A);
    assert_true(WAIT_UNTIL(cluster_up(A), 5000));
    rp_freeze(redis);
    once o[FROZEN_CALLS];
    memset(o, 0, sizeof o);
    const int64_t t0 = tu_now_ms();
    for (int i = 0; i < FROZEN_CALLS; i++)
        assert_int_equal(wsg_session_set(A->srv, "k", "v", 1, 0, once_cb, &o[i]), WSG_OK);
    wsg_completion *c = NULL;
    assert_int_equal(wsg_completion_new(&c), WSG_OK);
    assert_int_equal(wsg_session_get(A->srv, "k", wsg_completion_callback, c), WSG_OK);
    assert_int_equal(wsg_completion_wait(c, 0), WSG_ETIMEOUT);
    /* The command timeout (500 ms) drops the link: every call answered. */
    assert_int_equal(wsg_completion_wait(c, 3000), WSG_OK);
    const int64_t took = tu_now_ms() - t0;
    print_message("session get answered %lld ms after Redis froze (cluster.command_timeout_ms=500)\n",
                  (long long)took);
    assert_true(took >= 450);
    assert_true(took < 1500);
    const wsg_result *r = wsg_completion_result(c);
    assert_int_equal(wsg_result_status(r), WSG_ECLUSTER);
    assert_non_null(strstr(wsg_result_message(r), "cluster.command_timeout_ms"));
    for (int i = 0; i < FROZEN_CALLS; i++) {
        assert_true(WAIT_UNTIL(once_calls(&o[i]) == 1, 1000));
        assert_int_equal(o[i].status, WSG_ECLUSTER);
    }
    wsg_completion_free(c);
    rp_thaw(redis);
    assert_true(WAIT_UNTIL(cluster_up(A), 3000));
    tu_sleep_ms(50);
    for (int i = 0; i < FROZEN_CALLS; i++) assert_int_equal(once_calls(&o[i]), 1);
    assert_int_equal(tsrv_free(A), 0);
    rp_free(redis);
}

/* Frozen Redis, then the server stops: the calls waiting for Redis are
 * answered WSG_ESTATE, once; a completion freed before is discarded. */
static void stop_while_redis_frozen(void **state) {
    (void)state;
    redis_proc *redis = rp_start(NULL);
    assert_non_null(redis);
    const char *extra[] = {"cluster.command_timeout_ms=10000", NULL};
    tsrv *A = instance(redis->address, "z", extra);
    assert_non_null(A);
    assert_true(WAIT_UNTIL(cluster_up(A), 5000));
    rp_freeze(redis);
    once o[FROZEN_CALLS];
    memset(o, 0, sizeof o);
    for (int i = 0; i < FROZEN_CALLS; i++)
        assert_int_equal(wsg_session_get(A->srv, "k", once_cb, &o[i]), WSG_OK);
    wsg_completion *freed = NULL;
    assert_int_equal(wsg_completion_new(&freed), WSG_OK);
    assert_int_equal(wsg_session_get(A->srv, "k", wsg_completion_callback, freed), WSG_OK);
    wsg_completion_free(freed);
    tu_sleep_ms(100); /* sent to Redis, which does not answer */
    for (int i = 0; i < FROZEN_CALLS; i++) assert_int_equal(once_calls(&o[i]), 0);
    const int64_t t0 = tu_now_ms();
    assert_int_equal(tsrv_free(A), 0);
    assert_true(tu_now_ms() - t0 < 3000); /* the stop does not wait for Redis */
    for (int i = 0; i < FROZEN_CALLS; i++) {
        assert_int_equal(once_calls(&o[i]), 1);
        assert_int_equal(o[i].status, WSG_ESTATE);
    }
    rp_thaw(redis);
    rp_free(redis);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shared_between_instances),
        cmocka_unit_test(redis_killed),
        cmocka_unit_test(redis_frozen),
        cmocka_unit_test(stop_while_redis_frozen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
