/* The cluster when Redis fails or is wrong: killed and restarted (local
 * delivery unaffected, cluster_down and cluster_up once each, delivery
 * again within about a second), frozen with SIGSTOP (commands time out, a
 * local echo keeps its latency), unreachable, a wrong or missing password,
 * a server that is not Redis, a name instead of an address. Clear errors,
 * nothing blocks, nothing crashes (the ASan stage checks leaks). */
#include <pthread.h>
#include <unistd.h>

#include "cluster_util.h"

/* The message of the n-th log event `event` of t contains `text`. */
static int log_says(tsrv *t, const char *event, const char *text) {
    char buf[4096];
    for (int i = 0; tsrv_log_get(t, event, i, buf, sizeof buf); i++)
        if (strstr(buf, text)) return 1;
    return 0;
}

/* Round trip of one echoed message, ms. */
static int64_t echo_ms(wsc *c) {
    int64_t t0 = tu_now_ms();
    assert_int_equal(wsc_send_text(c, "ping"), 0);
    wsc_frame f;
    assert_int_equal(wsc_recv_message(c, &f, 3000), 1);
    wsc_frame_free(&f);
    return tu_now_ms() - t0;
}

static void redis_killed_and_restarted(void **state) {
    (void)state;
    redis_proc *redis = rp_start(NULL);
    assert_non_null(redis);
    const char *require[] = {"cluster.require=true", NULL};
    tsrv *A = instance(redis->address, "k", require), *B = instance(redis->address, "k", require);
    assert_non_null(A);
    assert_non_null(B);
    assert_true(WAIT_UNTIL(cluster_up(A) && cluster_up(B), 5000));
    client a = open_user(A, "alice"), b = open_user(B, "bob"), b2 = open_user(B, NULL);
    assert_int_equal(wsg_conn_subscribe(A->srv, a.id, "t"), WSG_OK);
    assert_int_equal(wsg_conn_subscribe(B->srv, b.id, "t"), WSG_OK);
    assert_true(WAIT_UNTIL(numsub(redis, "k:t:t") == 2, 2000));

    rp_kill(redis);
    int ready = 1;
    assert_true(WAIT_UNTIL(!cluster_up(A) && !cluster_up(B), 3000));
    assert_int_equal(wsg_server_ready(B->srv, &ready), WSG_OK);
    assert_int_equal(ready, 0);  /* cluster.require */
    /* Local delivery goes on; the copy for A is dropped and counted. */
    long long dropped = tsrv_metric(B, "wsgate_cluster_dropped_total{reason=\"down\"}");
    assert_int_equal(wsg_server_publish(B->srv, "t", WSG_MSG_TEXT, "local", 5), WSG_OK);
    expect_text(b.c, "local");
    expect_nothing(a.c, 100);
    assert_int_equal(tsrv_metric(B, "wsgate_cluster_dropped_total{reason=\"down\"}"), dropped + 1);
    assert_true(echo_ms(b2.c) < 500);
    /* Cross-instance calls fail fast, saying why. */
    assert_int_equal(wsg_conn_send(B->srv, a.id, WSG_MSG_TEXT, "x", 1), WSG_ECLUSTER);
    assert_non_null(strstr(wsg_last_error(), "cluster is down"));
    assert_int_equal(wsg_conn_close(B->srv, a.id, 1000, NULL), WSG_ECLUSTER);
    assert_int_equal(wsg_user_send(B->srv, "alice", WSG_MSG_TEXT, "x", 1), WSG_ECLUSTER);
    assert_int_equal(wsg_user_send(B->srv, "bob", WSG_MSG_TEXT, "here", 4), WSG_OK);  /* local part */
    expect_text(b.c, "here");
    assert_int_equal(wsg_user_close(B->srv, "alice", 1000, NULL), WSG_ECLUSTER);

    /* Redis returns: subscriptions are restored and delivery resumes
     * within about a second (cluster.reconnect_max_ms 200 here). */
    assert_int_equal(rp_restart(redis), 0);
    const int64_t back = tu_now_ms();
    int got = 0;
    while (!got && tu_now_ms() - back < 3000) {
        wsg_server_publish(B->srv, "t", WSG_MSG_TEXT, "again", 5);
        wsc_frame f;
        if (wsc_recv_message(a.c, &f, 20) == 1) {
            got = f.len == 5 && memcmp(f.data, "again", 5) == 0;
            wsc_frame_free(&f);
        }
    }
    const int64_t took = tu_now_ms() - back;
    print_message("delivery again %lld ms after Redis returned\n", (long long)took);
    assert_true(got);
    assert_true(took < 1000 * TU_SLOW_FACTOR);
    assert_true(WAIT_UNTIL(cluster_up(A) && cluster_up(B), 2000));
    assert_int_equal(wsg_server_ready(B->srv, &ready), WSG_OK);
    assert_int_equal(ready, 1);
    /* Once per outage each (plus the cluster_up of the start). */
    assert_int_equal(tsrv_log_count(A, "cluster_down"), 1);
    assert_int_equal(tsrv_log_count(B, "cluster_down"), 1);
    assert_true(WAIT_UNTIL(tsrv_log_count(A, "cluster_up") == 2, 1000));
    assert_int_equal(tsrv_log_count(B, "cluster_up"), 2);
    char buf[2048];
    assert_true(tsrv_log_get(B, "cluster_up", 1, buf, sizeof buf));
    assert_non_null(strstr(buf, "\"down_ms\":"));
    assert_true(tsrv_metric(B, "wsgate_cluster_reconnects_total") >= 2);
    wsc_free(a.c);
    wsc_free(b.c);
    wsc_free(b2.c);
    assert_int_equal(tsrv_free(A), 0);
    assert_int_equal(tsrv_free(B), 0);
    rp_free(redis);
}

static void redis_frozen(void **state) {
    (void)state;
    redis_proc *redis = rp_start(NULL);
    assert_non_null(redis);
    const char *extra[] = {"cluster.command_timeout_ms=300", "cluster.connect_timeout_ms=300", NULL};
    tsrv *A = instance(redis->address, "f", extra);
    assert_non_null(A);
    assert_true(WAIT_UNTIL(cluster_up(A), 5000));
    client a = open_user(A, NULL);
    int64_t before = 0;
    for (int i = 0; i < 5; i++) before += echo_ms(a.c);

    rp_freeze(redis);
    const int64_t t0 = tu_now_ms();
    /* Publishes pile up unanswered until the command timeout drops the link. */
    for (int i = 0; i < 50; i++) assert_int_equal(wsg_server_publish(A->srv, "x", WSG_MSG_TEXT, "p", 1), WSG_OK);
    int64_t worst = 0;
    while (!tsrv_log_count(A, "cluster_down") && tu_now_ms() - t0 < 3000) {
        int64_t ms = echo_ms(a.c);
        if (ms > worst) worst = ms;
        tu_sleep_ms(10);
    }
    const int64_t detected = tu_now_ms() - t0;
    print_message("frozen Redis detected after %lld ms; local echo worst %lld ms (before: %lld ms for 5)\n",
                  (long long)detected, (long long)worst, (long long)before);
    assert_int_equal(tsrv_log_count(A, "cluster_down"), 1);
    assert_true(log_says(A, "cluster_down", "cluster.command_timeout_ms"));
    assert_true(detected < 300 + 700 * TU_SLOW_FACTOR);
    assert_true(worst < 200 * TU_SLOW_FACTOR);  /* nothing blocked the service thread */
    assert_false(cluster_up(A));
    assert_int_equal(wsg_conn_send(A->srv, a.id | (77ull << 48), WSG_MSG_TEXT, "x", 1), WSG_ECLUSTER);
    /* The waiting publishes were failed at once, counted. */
    assert_true(tsrv_metric(A, "wsgate_cluster_dropped_total{reason=\"unconfirmed\"}") >= 50);
    /* Reconnects meanwhile hang too (the kernel still accepts): each one
     * ends at the connect timeout; the outage is logged once. */
    tu_sleep_ms(700);
    assert_int_equal(tsrv_log_count(A, "cluster_down"), 1);
    rp_thaw(redis);
    assert_true(WAIT_UNTIL(cluster_up(A), 3000));
    assert_true(echo_ms(a.c) < 500);
    wsc_free(a.c);
    assert_int_equal(tsrv_free(A), 0);
    rp_free(redis);
}

/* A server on a bad Redis: it serves locally, says why the cluster is down
 * (once), and cross-instance calls fail with that reason. */
static void check_bad_redis(const char *address, const char *const *extra, const char *why) {
    tsrv *A = instance(address, "b", extra);
    assert_non_null(A);
    assert_true(WAIT_UNTIL(tsrv_log_count(A, "cluster_down") == 1, 3000));
    if (!log_says(A, "cluster_down", why)) {
        char buf[4096] = "";
        tsrv_log_get(A, "cluster_down", 0, buf, sizeof buf);
        fail_msg("cluster_down does not say '%s': %s", why, buf);
    }
    client a = open_user(A, "carol");
    assert_true(echo_ms(a.c) < 500);
    assert_int_equal(wsg_conn_subscribe(A->srv, a.id, "t"), WSG_OK);
    assert_int_equal(wsg_server_publish(A->srv, "t", WSG_MSG_TEXT, "local", 5), WSG_OK);
    expect_text(a.c, "local");
    assert_int_equal(wsg_user_send(A->srv, "dave", WSG_MSG_TEXT, "x", 1), WSG_ECLUSTER);
    assert_non_null(strstr(wsg_last_error(), why));
    /* Before a node number, ids are local-only (node 0). */
    assert_int_equal((int)(a.id >> 48), 0);
    tu_sleep_ms(300);  /* retries go on quietly */
    assert_int_equal(tsrv_log_count(A, "cluster_down"), 1);
    assert_false(cluster_up(A));
    wsc_free(a.c);
    assert_int_equal(tsrv_free(A), 0);
}

static void bad_redis_is_reported_clearly(void **state) {
    (void)state;
    /* Nothing listens there (port 1, tcpmux, is never served here). */
    check_bad_redis("127.0.0.1:1", NULL, "cannot connect");
    /* An echo server: replies, but not like Redis. */
    int port = 0;
    rp_echo *echo = rp_echo_start(&port);
    assert_non_null(echo);
    char address[32];
    snprintf(address, sizeof address, "127.0.0.1:%d", port);
    check_bad_redis(address, NULL, "does not answer like Redis");
    rp_echo_free(echo);
    /* A password Redis refuses, and none where one is required. */
    redis_proc *redis = rp_start("s3cret");
    assert_non_null(redis);
    char dir[] = "/tmp/wsg-pw-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char wrong[64], right[64], wrong_opt[96], right_opt[96];
    snprintf(wrong, sizeof wrong, "%s/wrong", dir);
    snprintf(right, sizeof right, "%s/right", dir);
    FILE *f = fopen(wrong, "w");
    fputs("not-it\n", f);
    fclose(f);
    f = fopen(right, "w");
    fputs("s3cret\n", f);
    fclose(f);
    snprintf(wrong_opt, sizeof wrong_opt, "cluster.password_file=%s", wrong);
    snprintf(right_opt, sizeof right_opt, "cluster.password_file=%s", right);
    const char *wrong_pw[] = {wrong_opt, NULL}, *right_pw[] = {right_opt, NULL};
    check_bad_redis(redis->address, wrong_pw, "refused the password");
    check_bad_redis(redis->address, NULL, "requires a password");
    tsrv *ok = instance(redis->address, "b", right_pw);
    assert_non_null(ok);
    assert_true(WAIT_UNTIL(cluster_up(ok), 3000));
    assert_int_equal(tsrv_free(ok), 0);
    unlink(wrong);
    unlink(right);
    rmdir(dir);
    rp_free(redis);
}

static void bad_settings_are_refused_at_once(void **state) {
    (void)state;
    wsg_config *cfg = NULL;
    assert_int_equal(wsg_config_new(&cfg), WSG_OK);
    /* A name would be resolved by a blocking getaddrinfo on the loop. */
    assert_int_equal(wsg_config_set_string(cfg, "cluster.redis", "localhost:6379"), WSG_EINVAL);
    assert_non_null(strstr(wsg_last_error(), "not an IP address literal"));
    assert_int_equal(wsg_config_set_string(cfg, "cluster.redis", "127.0.0.1"), WSG_EINVAL);
    assert_int_equal(wsg_config_set_string(cfg, "cluster.redis", "127.0.0.1:0"), WSG_EINVAL);
    assert_int_equal(wsg_config_set_string(cfg, "cluster.redis", "unix:relative"), WSG_EINVAL);
    assert_int_equal(wsg_config_set_string(cfg, "cluster.prefix", ""), WSG_EINVAL);
    assert_int_equal(wsg_config_set_string(cfg, "cluster.node_id", "has space"), WSG_EINVAL);
    const char *v = NULL;
    assert_int_equal(wsg_config_get_string(cfg, "cluster.redis", &v), WSG_OK);
    assert_string_equal(v, "");  /* unchanged by the failures */
    wsg_server *srv = NULL;
    /* cluster.require without a cluster. */
    assert_int_equal(wsg_config_set_bool(cfg, "cluster.require", 1), WSG_OK);
    assert_int_equal(wsg_server_new(&srv, cfg), WSG_EINVAL);
    assert_non_null(strstr(wsg_last_error(), "cluster.require"));
    assert_int_equal(wsg_config_set_string(cfg, "cluster.redis", "[::1]:6379"), WSG_OK);
    /* The poll loop has no libev for hiredis. */
    assert_int_equal(wsg_config_set_string(cfg, "tuning.event_loop", "poll"), WSG_OK);
    assert_int_equal(wsg_server_new(&srv, cfg), WSG_EINVAL);
    assert_non_null(strstr(wsg_last_error(), "tuning.event_loop"));
    assert_int_equal(wsg_config_set_string(cfg, "tuning.event_loop", "epoll"), WSG_OK);
    /* An unreadable password file. */
    assert_int_equal(wsg_config_set_string(cfg, "cluster.password_file", "/nonexistent/pw"), WSG_OK);
    assert_int_equal(wsg_server_new(&srv, cfg), WSG_EINVAL);
    assert_non_null(strstr(wsg_last_error(), "cannot read"));
    assert_int_equal(wsg_config_set_string(cfg, "cluster.password_file", ""), WSG_OK);
    assert_int_equal(wsg_config_set_string(cfg, "cluster.redis", "unix:/nonexistent/redis.sock"), WSG_OK);
    assert_int_equal(wsg_config_set_int(cfg, "cluster.reconnect_min_ms", 500), WSG_OK);
    assert_int_equal(wsg_config_set_int(cfg, "cluster.reconnect_max_ms", 100), WSG_OK);
    assert_int_equal(wsg_server_new(&srv, cfg), WSG_EINVAL);
    assert_non_null(strstr(wsg_last_error(), "reconnect_min_ms"));
    assert_null(srv);
    wsg_config_free(cfg);
    /* A missing unix socket fails at once (synchronously in hiredis). */
    check_bad_redis("unix:/nonexistent/redis.sock", NULL, "cannot connect");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_settings_are_refused_at_once),
        cmocka_unit_test(bad_redis_is_reported_clearly),
        cmocka_unit_test(redis_killed_and_restarted),
        cmocka_unit_test(redis_frozen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
