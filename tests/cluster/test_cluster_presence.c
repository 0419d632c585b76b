/* Presence (wsg_topic_presence, wsg_user_presence): without a cluster (this
 * instance's entries), and with three instances on one real Redis: the same
 * entries on all three (right node in the ids, user ids, since), unsubscribe
 * and close remove theirs, a clean stop removes an instance's at once; an
 * instance killed with -9 or frozen with SIGSTOP (a child process: this
 * binary run as "child") loses its entries within cluster.presence_ttl_ms,
 * a frozen one gets them back when continued; Redis killed and restarted
 * empty gets every entry written again. Bad input is refused. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster_util.h"

#define MAX_ENTRIES 16

/* One presence answer, copied out of the callback. */
typedef struct {
    pthread_mutex_t mu;
    int done;
    wsg_status status;
    char message[512];
    size_t n;
    wsg_conn_id ids[MAX_ENTRIES];
    char users[MAX_ENTRIES][32];
    int64_t since[MAX_ENTRIES];
    int bad_accessor;  /* an accessor failed inside the callback */
} answer;

static void on_answer(wsg_server *server, const wsg_result *r, void *user) {
    (void)server;
    answer *a = user;
    pthread_mutex_lock(&a->mu);
    a->status = wsg_result_status(r);
    snprintf(a->message, sizeof a->message, "%s", wsg_result_message(r));
    a->n = wsg_result_count(r);
    for (size_t i = 0; i < a->n && i < MAX_ENTRIES; i++) {
        const char *u = NULL;
        if (wsg_result_presence(r, i, &a->ids[i], &u, &a->since[i]) != WSG_OK || !u) a->bad_accessor = 1;
        snprintf(a->users[i], sizeof a->users[i], "%s", u ? u : "");
    }
    /* (cmocka's asserts belong to the test's thread: checked by ask()) */
    if (wsg_result_presence(r, a->n, NULL, NULL, NULL) != WSG_EINVAL) a->bad_accessor = 1;
    a->done = 1;
    pthread_mutex_unlock(&a->mu);
}

static int answered(answer *a) {
    pthread_mutex_lock(&a->mu);
    int d = a->done;
    pthread_mutex_unlock(&a->mu);
    return d;
}

/* Asks t for the presence of a topic ('t') or user ('u'), waits for the answer. */
static answer ask(tsrv *t, char kind, const char *name) {
    answer a;
    memset(&a, 0, sizeof a);
    pthread_mutex_init(&a.mu, NULL);
    wsg_status st = kind == 't' ? wsg_topic_presence(t->srv, name, on_answer, &a)
                                : wsg_user_presence(t->srv, name, on_answer, &a);
    assert_int_equal(st, WSG_OK);
    assert_true(WAIT_UNTIL(answered(&a), 3000));
    pthread_mutex_destroy(&a.mu);
    assert_false(a.bad_accessor);
    assert_true(a.n <= MAX_ENTRIES);
    return a;
}

/* Entries of a successful answer, -1 when it failed. */
static int count(tsrv *t, char kind, const char *name) {
    answer a = ask(t, kind, name);
    return a.status == WSG_OK ? (int)a.n : -1;
}

static int index_of(const answer *a, wsg_conn_id id) {
    for (size_t i = 0; i < a->n; i++)
        if (a->ids[i] == id) return (int)i;
    return -1;
}

static int has(tsrv *t, char kind, const char *name, wsg_conn_id id) {
    answer a = ask(t, kind, name);
    return a.status == WSG_OK && index_of(&a, id) >= 0;
}

static void same_answers(const answer *x, const answer *y) {
    assert_int_equal(x->status, WSG_OK);
    assert_int_equal(y->status, WSG_OK);
    assert_int_equal(x->n, y->n);
    for (size_t i = 0; i < x->n; i++) {
        assert_true(x->ids[i] == y->ids[i]);
        assert_string_equal(x->users[i], y->users[i]);
        assert_int_equal(x->since[i], y->since[i]);
    }
}

static uint16_t node_of(wsg_conn_id id) { return (uint16_t)(id >> 48); }

static int64_t unix_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- child */

/* The child instance: subscribes every connection to argv's topic. */
static char child_topic[64];

static void child_on_open(wsg_server *s, wsg_conn_id id, void *user) {
    (void)user;
    wsg_conn_subscribe(s, id, child_topic);
}

static int child_main(const char *address, const char *prefix, const char *topic) {
    snprintf(child_topic, sizeof child_topic, "%s", topic);
    wsg_config *cfg;
    if (wsg_config_new(&cfg) != WSG_OK) return 1;
    wsg_config_set_string(cfg, "listen.host", "127.0.0.1");
    wsg_config_set_int(cfg, "listen.port", 0);
    wsg_config_set_string(cfg, "log.level", "error");
    wsg_config_set_string(cfg, "auth.mode", "callback");
    wsg_config_set_string(cfg, "cluster.redis", address);
    wsg_config_set_string(cfg, "cluster.prefix", prefix);
    wsg_config_set_int(cfg, "cluster.presence_ttl_ms", 1000);
    wsg_config_set_int(cfg, "cluster.reconnect_min_ms", 20);
    wsg_config_set_int(cfg, "cluster.reconnect_max_ms", 200);
    wsg_server *srv;
    if (wsg_server_new(&srv, cfg) != WSG_OK) return 1;
    wsg_config_free(cfg);
    wsg_server_on_auth(srv, user_from_header, NULL, NULL);
    wsg_server_on_open(srv, child_on_open, NULL, NULL);
    int port = 0;
    if (wsg_server_start(srv) != WSG_OK || wsg_server_port(srv, &port) != WSG_OK) return 1;
    /* Connections opened before the node number is known carry node 0. */
    static char buf[65536];
    size_t len = 0;
    for (int i = 0; i < 2500; i++) {
        if (wsg_server_metrics(srv, buf, sizeof buf - 1, &len) == WSG_OK) {
            buf[len] = 0;
            if (strstr(buf, "\nwsgate_cluster_up 1")) break;
        }
        tu_sleep_ms(2);
    }
    printf("%d\n", port);
    fflush(stdout);
    for (;;) pause();
}

typedef struct {
    pid_t pid;
    int port;
} child;

/* This binary again, as a child instance; its port read from a pipe. */
static child start_child(const char *address, const char *prefix, const char *topic) {
    child c = {0, 0};
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t parent = getpid();
    c.pid = fork();
    assert_true(c.pid >= 0);
    if (c.pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl("/proc/self/exe", "test_cluster_presence", "child", address, prefix, topic, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%d", &c.port), 1);
    fclose(f);
    return c;
}

static void kill_child(child *c) {
    if (!c->pid) return;
    kill(c->pid, SIGKILL);
    waitpid(c->pid, NULL, 0);
    c->pid = 0;
}

/* ---------------------------------------------------------------- tests */

static void presence_without_cluster(void **state) {
    (void)state;
    const char *settings[] = {"auth.mode=callback", NULL};
    tsrv *t = tsrv_start_auth(settings, 1, user_from_header);
    assert_non_null(t);
    client alice = open_user(t, "alice"), anon = open_user(t, NULL);
    const int64_t t0 = unix_now_ms();
    assert_int_equal(wsg_conn_subscribe(t->srv, alice.id, "room"), WSG_OK);
    assert_int_equal(wsg_conn_subscribe(t->srv, anon.id, "room"), WSG_OK);
    assert_true(WAIT_UNTIL(count(t, 't', "room") == 2, 2000));
    const int64_t t1 = unix_now_ms();
    answer a = ask(t, 't', "room");
    assert_int_equal(a.status, WSG_OK);
    assert_string_equal(a.message, "");
    int i = index_of(&a, alice.id), j = index_of(&a, anon.id);
    assert_true(i >= 0 && j >= 0);
    assert_string_equal(a.users[i], "alice");
    assert_string_equal(a.users[j], "");
    assert_true(a.since[i] >= t0 - 1 && a.since[i] <= t1 + 1);
    a = ask(t, 'u', "alice");
    assert_int_equal(a.n, 1);
    assert_true(a.ids[0] == alice.id);
    assert_string_equal(a.users[0], "alice");
    assert_true(a.since[0] <= t0 + 1 && a.since[0] > t0 - 5000);
    assert_int_equal(count(t, 't', "nobody-here"), 0);
    assert_int_equal(count(t, 'u', "nobody"), 0);
    /* Unsubscribe and close remove theirs. */
    assert_int_equal(wsg_conn_unsubscribe(t->srv, alice.id, "room"), WSG_OK);
    assert_true(WAIT_UNTIL(count(t, 't', "room") == 1, 2000));
    wsc_free(alice.c);
    assert_true(WAIT_UNTIL(count(t, 'u', "alice") == 0, 2000));

    /* Bad input: refused, the callback never runs. */
    answer never;
    memset(&never, 0, sizeof never);
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(wsg_topic_presence(t->srv, "room", NULL, NULL), WSG_EINVAL);
    assert_int_equal(wsg_user_presence(t->srv, "alice", NULL, NULL), WSG_EINVAL);
    assert_int_equal(wsg_topic_presence(t->srv, NULL, on_answer, &never), WSG_EINVAL);
    assert_int_equal(wsg_topic_presence(t->srv, "", on_answer, &never), WSG_EINVAL);
    assert_int_equal(wsg_topic_presence(t->srv, big, on_answer, &never), WSG_EINVAL);
    assert_non_null(strstr(wsg_last_error(), "at most 255"));
    assert_int_equal(wsg_topic_presence(t->srv, "bad\xff", on_answer, &never), WSG_EINVAL);
    assert_int_equal(wsg_user_presence(t->srv, "", on_answer, &never), WSG_EINVAL);
    assert_int_equal(wsg_user_presence(t->srv, NULL, on_answer, &never), WSG_EINVAL);
    assert_int_equal(wsg_topic_presence(NULL, "room", on_answer, &never), WSG_EINVAL);
    assert_int_equal(wsg_result_status(NULL), WSG_EINVAL);
    assert_int_equal(wsg_result_count(NULL), 0);
    assert_int_equal(wsg_result_presence(NULL, 0, NULL, NULL, NULL), WSG_EINVAL);
    wsc_free(anon.c);
    assert_int_equal(tsrv_free(t), 0);
    assert_false(never.done);

    /* Not running: WSG_ESTATE. */
    wsg_config *cfg;
    wsg_server *idle;
    assert_int_equal(wsg_config_new(&cfg), WSG_OK);
    assert_int_equal(wsg_server_new(&idle, cfg), WSG_OK);
    wsg_config_free(cfg);
    assert_int_equal(wsg_topic_presence(idle, "room", on_answer, &never), WSG_ESTATE);
    assert_int_equal(wsg_user_presence(idle, "alice", on_answer, &never), WSG_ESTATE);
    wsg_server_free(idle);
}

static void presence_on_three_instances(void **state) {
    (void)state;
    redis_proc *redis = rp_start(NULL);
    assert_non_null(redis);
    /* B stops without waiting for its clients' close handshakes. */
    const char *quick_stop[] = {"server.shutdown_timeout_ms=100", NULL};
    tsrv *A = instance(redis->address, "p3", NULL), *B = instance(redis->address, "p3", quick_stop),
         *C = instance(redis->address, "p3", NULL);
    assert_non_null(A);
    assert_non_null(B);
    assert_non_null(C);
    assert_true(WAIT_UNTIL(cluster_up(A) && cluster_up(B) && cluster_up(C), 5000));
    client a1 = open_user(A, "alice"), b1 = open_user(B, "bob"), c1 = open_user(C, "alice"), c2 = open_user(C, NULL);
    /* Three nodes, in the ids. */
    assert_true(node_of(a1.id) && node_of(b1.id) && node_of(c1.id));
    assert_true(node_of(a1.id) != node_of(b1.id) && node_of(b1.id) != node_of(c1.id) &&
                node_of(a1.id) != node_of(c1.id));
    assert_int_equal(node_of(c1.id), node_of(c2.id));
    const int64_t t0 = unix_now_ms();
    assert_int_equal(wsg_conn_subscribe(A->srv, a1.id, "room:1"), WSG_OK);
    assert_int_equal(wsg_conn_subscribe(B->srv, b1.id, "room:1"), WSG_OK);
    assert_int_equal(wsg_conn_subscribe(C->srv, c2.id, "room:1"), WSG_OK);
    /* A topic whose name could be mistaken for another's keys (the node set
     * of "room" and a node's hash of "room:1" must not meet). */
    assert_int_equal(wsg_conn_subscribe(C->srv, c1.id, "room"), WSG_OK);
    assert_true(WAIT_UNTIL(count(A, 't', "room:1") == 3 && count(B, 't', "room:1") == 3 &&
                               count(C, 't', "room:1") == 3,
                           3000));
    /* A subscription from this thread is stamped when the service thread
     * runs it (the mailbox), so after the call returns but before it shows. */
    const int64_t t_sub = unix_now_ms();
    answer x = ask(A, 't', "room:1"), y = ask(B, 't', "room:1"), z = ask(C, 't', "room:1");
    same_answers(&x, &y);
    same_answers(&x, &z);
    int i = index_of(&x, a1.id), j = index_of(&x, b1.id), k = index_of(&x, c2.id);
    assert_true(i >= 0 && j >= 0 && k >= 0);
    assert_string_equal(x.users[i], "alice");
    assert_string_equal(x.users[j], "bob");
    assert_string_equal(x.users[k], "");
    for (size_t n = 0; n < x.n; n++) assert_true(x.since[n] >= t0 - 1 && x.since[n] <= t_sub + 1);
    assert_int_equal(count(B, 't', "room"), 1);
    /* A user's connections, everywhere. */
    x = ask(A, 'u', "alice");
    y = ask(B, 'u', "alice");
    z = ask(C, 'u', "alice");
    assert_int_equal(x.n, 2);
    same_answers(&x, &y);
    same_answers(&x, &z);
    assert_true(index_of(&x, a1.id) >= 0 && index_of(&x, c1.id) >= 0);
    assert_string_equal(x.users[0], "alice");
    assert_true(x.since[0] <= t0 + 1 && x.since[1] <= t0 + 1);

    /* Unsubscribe and close remove theirs, on every instance. */
    assert_int_equal(wsg_conn_unsubscribe(B->srv, b1.id, "room:1"), WSG_OK);
    assert_true(WAIT_UNTIL(count(A, 't', "room:1") == 2 && count(C, 't', "room:1") == 2, 2000));
    wsc_free(c2.c);
    assert_true(WAIT_UNTIL(count(A, 't', "room:1") == 1 && count(B, 't', "room:1") == 1, 2000));
    wsc_free(c1.c);
    assert_true(WAIT_UNTIL(count(A, 'u', "alice") == 1 && count(B, 'u', "alice") == 1, 2000));
    assert_true(WAIT_UNTIL(count(B, 't', "room") == 0, 2000));

    /* A clean stop removes B's entries at once: those of a connection still
     * open when the stop ends too (its end is not what removes them). */
    assert_int_equal(count(A, 'u', "bob"), 1);
    wsc_free(b1.c);
    assert_true(WAIT_UNTIL(count(A, 'u', "bob") == 0, 2000));
    client b2 = open_user(B, "bob");
    assert_true(WAIT_UNTIL(has(A, 'u', "bob", b2.id), 2000));
    assert_int_equal(wsg_conn_subscribe(B->srv, b2.id, "room:1"), WSG_OK);
    assert_true(WAIT_UNTIL(count(A, 't', "room:1") == 2, 2000));
    const int64_t t_stop = tu_now_ms();
    assert_int_equal(tsrv_free(B), 0);
    print_message("clean stop took %lld ms\n", (long long)(tu_now_ms() - t_stop));
    assert_int_equal(count(A, 'u', "bob"), 0);
    assert_int_equal(count(C, 't', "room:1"), 1);
    /* Its lease and its key set are gone too. */
    char lease[64], keys[64];
    snprintf(lease, sizeof lease, "p3:lease:%u", node_of(b2.id));
    snprintf(keys, sizeof keys, "p3:pk:%u", node_of(b2.id));
    const char *exists[] = {"EXISTS", lease, keys};
    char *reply = rp_query(redis, 3, exists);
    assert_non_null(reply);
    assert_string_equal(reply, "0");
    free(reply);
    wsc_free(b2.c);
    wsc_free(a1.c);
    assert_int_equal(tsrv_free(A), 0);
    assert_int_equal(tsrv_free(C), 0);
    rp_free(redis);
}

/* An instance killed with -9 or frozen: its entries are gone within the
 * TTL (1000 ms here); a frozen one gets them back when continued. */
static void presence_of_a_dead_or_frozen_instance(void **state) {
    (void)state;
    redis_proc *redis = rp_start(NULL);
    assert_non_null(redis);
    const char *ttl[] = {"cluster.presence_ttl_ms=1000", NULL};
    tsrv *A = instance(redis->address, "pk", ttl);
    assert_non_null(A);
    child x = start_child(redis->address, "pk", "room");
    int status = 0;
    wsc *carol = wsc_connect("127.0.0.1", x.port, "/", "x-user: carol\r\n", 3000, &status);
    assert_non_null(carol);
    assert_true(WAIT_UNTIL(count(A, 't', "room") == 1 && count(A, 'u', "carol") == 1, 5000));
    answer a = ask(A, 't', "room");
    assert_string_equal(a.users[0], "carol");
    const wsg_conn_id carol_id = a.ids[0];
    assert_true(node_of(carol_id) != 0);

    /* Frozen: gone within the TTL... */
    kill(x.pid, SIGSTOP);
    int64_t t0 = tu_now_ms();
    assert_true(WAIT_UNTIL(count(A, 't', "room") == 0 && count(A, 'u', "carol") == 0, 3000));
    int64_t gone = tu_now_ms() - t0;
    print_message("frozen instance: entries gone after %lld ms (TTL 1000)\n", (long long)gone);
    assert_true(gone <= 1000 + 200);
    /* ...and back once continued, the same ones. */
    tu_sleep_ms(200);
    kill(x.pid, SIGCONT);
    t0 = tu_now_ms();
    assert_true(WAIT_UNTIL(has(A, 't', "room", carol_id) && has(A, 'u', "carol", carol_id), 3000));
    print_message("continued instance: entries back after %lld ms\n", (long long)(tu_now_ms() - t0));

    /* Killed: gone within the TTL. */
    kill_child(&x);
    t0 = tu_now_ms();
    assert_true(WAIT_UNTIL(count(A, 't', "room") == 0 && count(A, 'u', "carol") == 0, 3000));
    gone = tu_now_ms() - t0;
    print_message("killed instance: entries gone after %lld ms (TTL 1000)\n", (long long)gone);
    assert_true(gone <= 1000 + 200);
    wsc_free(carol);
    assert_int_equal(tsrv_free(A), 0);
    rp_free(redis);
}

/* Redis killed and started again, empty: each instance writes its entries
 * again, also those that changed during the outage. */
static void presence_after_redis_restart(void **state) {
    (void)state;
    redis_proc *redis = rp_start(NULL);
    assert_non_null(redis);
    tsrv *A = instance(redis->address, "pr", NULL), *B = instance(redis->address, "pr", NULL);
    assert_non_null(A);
    assert_non_null(B);
    assert_true(WAIT_UNTIL(cluster_up(A) && cluster_up(B), 5000));
    client a1 = open_user(A, "alice"), b1 = open_user(B, "bob");
    assert_int_equal(wsg_conn_subscribe(A->srv, a1.id, "room"), WSG_OK);
    assert_int_equal(wsg_conn_subscribe(B->srv, b1.id, "room"), WSG_OK);
    assert_true(WAIT_UNTIL(count(A, 't', "room") == 2 && count(B, 't', "room") == 2, 3000));

    rp_kill(redis);
    assert_true(WAIT_UNTIL(!cluster_up(A), 3000));
    /* Down: WSG_ECLUSTER, saying why, with this instance's entries. */
    answer a = ask(A, 't', "room");
    assert_int_equal(a.status, WSG_ECLUSTER);
    assert_non_null(strstr(a.message, "cluster is down"));
    assert_non_null(strstr(a.message, "this instance's entries"));
    assert_int_equal(a.n, 1);
    assert_true(a.ids[0] == a1.id);
    /* A change during the outage. */
    client a2 = open_user(A, "ann");
    assert_int_equal(wsg_conn_subscribe(A->srv, a2.id, "room"), WSG_OK);
    assert_true(WAIT_UNTIL(ask(A, 't', "room").n == 2, 2000));

    assert_int_equal(rp_restart(redis), 0);
    const int64_t back = tu_now_ms();
    assert_true(WAIT_UNTIL(count(B, 't', "room") == 3 && count(A, 't', "room") == 3, 3000));
    print_message("presence rewritten %lld ms after Redis returned\n", (long long)(tu_now_ms() - back));
    assert_true(has(B, 'u', "ann", a2.id));
    assert_true(tsrv_metric(A, "wsgate_cluster_presence_resyncs_total") >= 2);
    wsc_free(a1.c);
    wsc_free(a2.c);
    wsc_free(b1.c);
    assert_int_equal(tsrv_free(A), 0);
    assert_int_equal(tsrv_free(B), 0);
    rp_free(redis);
}

/* Another server holds this instance's lease (as after Redis lost its data
 * and a new instance took the number first): logged and counted once, the
 * instance keeps serving, its entries are not written (they lapse); when
 * the lease is free again it is taken back and the entries rewritten. */
static void presence_when_the_lease_is_taken(void **state) {
    (void)state;
    redis_proc *redis = rp_start(NULL);
    assert_non_null(redis);
    const char *ttl[] = {"cluster.presence_ttl_ms=600", NULL};
    tsrv *A = instance(redis->address, "pl", ttl), *B = instance(redis->address, "pl", ttl);
    assert_non_null(A);
    assert_non_null(B);
    assert_true(WAIT_UNTIL(cluster_up(A) && cluster_up(B), 5000));
    client a1 = open_user(A, "alice");
    assert_int_equal(wsg_conn_subscribe(A->srv, a1.id, "room"), WSG_OK);
    assert_true(WAIT_UNTIL(has(B, 't', "room", a1.id), 2000));

    char lease[64];
    snprintf(lease, sizeof lease, "pl:lease:%u", node_of(a1.id));
    const char *set[] = {"SET", lease, "intruder"};
    char *reply = rp_query(redis, 3, set);
    assert_non_null(reply);
    free(reply);
    assert_true(WAIT_UNTIL(tsrv_log_count(A, "cluster_node_conflict") == 1, 2000));
    assert_true(WAIT_UNTIL(count(B, 't', "room") == 0, 2000));  /* not renewed: lapsed */
    assert_int_equal(tsrv_metric(A, "wsgate_cluster_node_conflicts_total"), 1);
    assert_true(cluster_up(A));
    assert_int_equal(wsg_server_publish(A->srv, "room", WSG_MSG_TEXT, "still", 5), WSG_OK);
    expect_text(a1.c, "still");
    tu_sleep_ms(400);  /* more renewals: one event per conflict, not per renewal */
    assert_int_equal(tsrv_log_count(A, "cluster_node_conflict"), 1);

    const char *del[] = {"DEL", lease};
    reply = rp_query(redis, 2, del);
    assert_non_null(reply);
    free(reply);
    assert_true(WAIT_UNTIL(has(B, 't', "room", a1.id), 2000));
    reply = rp_query(redis, 2, (const char *[]){"GET", lease});
    assert_non_null(reply);
    assert_string_not_equal(reply, "intruder");
    assert_true(strlen(reply) == 16);  /* A's tag */
    free(reply);
    wsc_free(a1.c);
    assert_int_equal(tsrv_free(A), 0);
    assert_int_equal(tsrv_free(B), 0);
    rp_free(redis);
}

/* A server stopped and started again takes a fresh node number: its old
 * connections are gone and it gave the lease back, so another instance may
 * hold the old number by now (here: an intruder's lease on it). */
static void restart_takes_a_fresh_node_number(void **state) {
    (void)state;
    redis_proc *redis = rp_start(NULL);
    assert_non_null(redis);
    tsrv *A = instance(redis->address, "pr", NULL);
    assert_non_null(A);
    assert_true(WAIT_UNTIL(cluster_up(A), 5000));
    client a1 = open_user(A, "alice");
    const uint16_t old = node_of(a1.id);
    assert_true(old != 0);
    wsc_free(a1.c);
    assert_int_equal(wsg_server_stop(A->srv), WSG_OK);
    char lease[64];
    snprintf(lease, sizeof lease, "pr:lease:%u", old);
    char *reply = rp_query(redis, 2, (const char *[]){"EXISTS", lease});
    assert_non_null(reply);
    assert_string_equal(reply, "0"); /* given back at the clean stop */
    free(reply);
    reply = rp_query(redis, 3, (const char *[]){"SET", lease, "intruder"});
    assert_non_null(reply);
    free(reply);
    assert_int_equal(wsg_server_start(A->srv), WSG_OK);
    assert_int_equal(wsg_server_port(A->srv, &A->port), WSG_OK); /* port 0: a new one */
    assert_true(WAIT_UNTIL(cluster_up(A), 5000));
    client a2 = open_user(A, "alice");
    assert_true(node_of(a2.id) != 0 && node_of(a2.id) != old);
    assert_int_equal(tsrv_log_count(A, "cluster_node_conflict"), 0);
    wsc_free(a2.c);
    assert_int_equal(tsrv_free(A), 0);
    rp_free(redis);
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "child") == 0) return child_main(argv[2], argv[3], argv[4]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(presence_without_cluster),
        cmocka_unit_test(presence_on_three_instances),
        cmocka_unit_test(presence_of_a_dead_or_frozen_instance),
        cmocka_unit_test(presence_after_redis_restart),
        cmocka_unit_test(presence_when_the_lease_is_taken),
        cmocka_unit_test(restart_takes_a_fresh_node_number),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
