/* limits.max_connections_per_user across the instances of a cluster (issue
 * 12): an upgrade counts the user's connections on every instance (their
 * presence entries in Redis) and is refused with 429 over the limit; the
 * count follows closes; while Redis is down this instance's count alone
 * decides, so an outage locks nobody out (and each such upgrade is counted).
 * Real redis-server, two instances, wsclient clients with an x-user header. */
#include <stdint.h>

#include "cluster_util.h"

/* How many connections Redis lists for `user` on the node of `id`. */
static long long entries(redis_proc *r, const char *prefix, wsg_conn_id id, const char *user) {
    char key[160];
    snprintf(key, sizeof key, "%s:pu:%u:%s", prefix, (unsigned)(id >> 48), user);
    const char *argv[] = {"HLEN", key};
    char *reply = rp_query(r, 2, argv);
    long long n = reply ? atoll(reply) : -1;
    free(reply);
    return n;
}

/* An upgrade of `user` on t: the HTTP status it got (101 when it opened). */
static int try_user(tsrv *t, const char *user, wsc **out) {
    char headers[128];
    snprintf(headers, sizeof headers, "x-user: %s\r\n", user);
    int status = 0;
    *out = wsc_connect("127.0.0.1", t->port, "/", headers, 3000, &status);
    return *out ? 101 : status;
}

static void limit_counts_every_instance(void **state) {
    (void)state;
    redis_proc *redis = rp_start(NULL);
    assert_non_null(redis);
    const char *limit[] = {"limits.max_connections_per_user=2", NULL};
    tsrv *A = instance(redis->address, "ul", limit), *B = instance(redis->address, "ul", limit);
    assert_non_null(A);
    assert_non_null(B);
    assert_true(WAIT_UNTIL(cluster_up(A) && cluster_up(B), 5000));

    client a1 = open_user(A, "bob"), a2 = open_user(A, "bob");
    assert_true(WAIT_UNTIL(entries(redis, "ul", a1.id, "bob") == 2, 3000));
    /* Two on A: a third on B is over the limit. */
    wsc *c = NULL;
    assert_int_equal(try_user(B, "bob", &c), 429);
    assert_null(c);
    assert_true(WAIT_UNTIL(tsrv_metric(B, "wsgate_handshakes_refused_total{reason=\"limit\"}") == 1, 2000));
    /* Another user is not affected. */
    client carol = open_user(B, "carol");

    /* One closes on A: B lets bob in again once Redis has seen it go. */
    wsc_close(a2.c, 1000, 2000);
    assert_true(WAIT_UNTIL(entries(redis, "ul", a1.id, "bob") == 1, 3000));
    assert_int_equal(try_user(B, "bob", &c), 101);
    assert_non_null(c);
    /* Now one on A and one on B: a third is refused on either. */
    wsc *d = NULL;
    assert_true(WAIT_UNTIL(entries(redis, "ul", tsrv_last_open(B), "bob") == 1, 3000));
    assert_int_equal(try_user(A, "bob", &d), 429);
    assert_null(d);
    assert_int_equal(tsrv_metric(B, "wsgate_cluster_user_count_unknown_total"), 0);

    /* Redis gone: the local count decides; nobody is locked out. */
    rp_kill(redis);
    assert_true(WAIT_UNTIL(!cluster_up(B), 3000));
    assert_int_equal(try_user(B, "bob", &d), 101);
    assert_non_null(d);
    assert_int_equal(tsrv_metric(B, "wsgate_cluster_user_count_unknown_total"), 1);
    /* ...but the local limit still holds (two on B now). */
    wsc *e = NULL;
    assert_int_equal(try_user(B, "bob", &e), 429);
    assert_null(e);

    wsc_free(d);
    wsc_free(c);
    wsc_free(carol.c);
    wsc_free(a1.c);
    assert_int_equal(tsrv_free(A) + tsrv_free(B), 0);
    rp_free(redis);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(limit_counts_every_instance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
