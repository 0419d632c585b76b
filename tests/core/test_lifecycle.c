/* Server lifecycle through the ABI: every order of new/listen/start/run/
 * stop/free a user might try, a stop requested from a signal handler,
 * callback registration and its user_free, calls from inside callbacks,
 * bind errors, resources after stop. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"
#include "wsclient.h"

#define HOST "127.0.0.1"

static wsg_server *new_server(int port) {
    wsg_config *cfg;
    assert_int_equal(wsg_config_new(&cfg), WSG_OK);
    assert_int_equal(wsg_config_set_string(cfg, "listen.host", HOST), WSG_OK);
    assert_int_equal(wsg_config_set_int(cfg, "listen.port", port), WSG_OK);
    assert_int_equal(wsg_config_set_string(cfg, "log.level", "off"), WSG_OK);
    wsg_server *srv = NULL;
    assert_int_equal(wsg_server_new(&srv, cfg), WSG_OK);
    wsg_config_free(cfg);
    assert_non_null(srv);
    return srv;
}

static int server_port(wsg_server *srv) {
    int port = 0;
    assert_int_equal(wsg_server_port(srv, &port), WSG_OK);
    assert_true(port > 0);
    return port;
}

static void echo(wsg_server *s, wsg_conn_id id, wsg_msg_type type, const void *data, size_t len,
                 void *user) {
    (void)user;
    wsg_conn_send(s, id, type, data, len);
}

static void round_trip(int port) {
    int status = 0;
    wsc *c = wsc_connect(HOST, port, "/", NULL, 3000, &status);
    assert_non_null(c);
    assert_int_equal(wsc_send_text(c, "ping"), 0);
    wsc_frame f;
    assert_int_equal(wsc_recv_message(c, &f, 3000), 1);
    assert_string_equal((char *)f.data, "ping");
    wsc_frame_free(&f);
    wsc_close(c, 1000, 3000);
}

static void new_and_free_without_running(void **state) {
    (void)state;
    wsg_server *srv = new_server(0);
    int port = 1;
    assert_int_equal(wsg_server_port(srv, &port), WSG_ESTATE);
    assert_int_equal(port, 1); /* unchanged on failure */
    assert_int_equal(wsg_server_stop(srv), WSG_OK); /* stop before start is a no-op */
    wsg_server_free(srv);
    wsg_server_free(NULL);
    assert_int_equal(wsg_server_stop(NULL), WSG_EINVAL);
    assert_int_equal(wsg_server_start(NULL), WSG_EINVAL);
}

static void start_stop_twice_and_restart(void **state) {
    (void)state;
    wsg_server *srv = new_server(0);
    assert_int_equal(wsg_server_on_message(srv, echo, NULL, NULL), WSG_OK);
    assert_int_equal(wsg_server_start(srv), WSG_OK);
    assert_int_equal(wsg_server_start(srv), WSG_ESTATE);
    assert_non_null(strstr(wsg_last_error(), "already running"));
    assert_int_equal(wsg_server_listen(srv), WSG_ESTATE);
    assert_int_equal(wsg_server_run(srv), WSG_ESTATE);
    int port = server_port(srv);
    round_trip(port);
    assert_int_equal(wsg_server_stop(srv), WSG_OK);
    assert_int_equal(wsg_server_stop(srv), WSG_OK); /* double stop */
    assert_int_equal(wsg_server_port(srv, &port), WSG_ESTATE);
    /* The port is released: connecting fails. */
    assert_int_equal(wsc_tcp_connect(HOST, port, 500), -1);
    /* A stopped server starts again; ids from the first run stay stale. */
    assert_int_equal(wsg_server_start(srv), WSG_OK);
    round_trip(server_port(srv));
    assert_int_equal(wsg_server_stop(srv), WSG_OK);
    wsg_server_free(srv);
}

static void free_while_running_stops_first(void **state) {
    (void)state;
    int fds = tu_open_fds();
    wsg_server *srv = new_server(0);
    assert_int_equal(wsg_server_start(srv), WSG_OK);
    int status;
    wsc *c = wsc_connect(HOST, server_port(srv), "/", NULL, 3000, &status);
    assert_non_null(c);
    assert_true(WAIT_UNTIL(tu_conn_count(srv) == 1, 3000));
    wsg_server_free(srv); /* running, with a client */
    int code = 0;
    assert_int_equal(wsc_wait_closed(c, 5000, 0, &code), 1);
    assert_int_equal(code, 1001);
    wsc_free(c);
    assert_int_equal(tu_open_fds(), fds);
}

static void listen_then_stop_or_free(void **state) {
    (void)state;
    wsg_server *srv = new_server(0);
    assert_int_equal(wsg_server_listen(srv), WSG_OK);
    assert_int_equal(wsg_server_listen(srv), WSG_ESTATE);
    int port = server_port(srv);
    /* The socket is bound before serving: a TCP connect succeeds (backlog). */
    int fd = wsc_tcp_connect(HOST, port, 1000);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(wsg_server_stop(srv), WSG_OK);
    assert_int_equal(wsg_server_port(srv, &port), WSG_ESTATE);
    assert_int_equal(wsg_server_listen(srv), WSG_OK);
    wsg_server_free(srv); /* listening, never served */
}

struct runner {
    wsg_server *srv;
    wsg_status st;
    atomic_int returned;
};

static void *run_thread(void *arg) {
    struct runner *r = arg;
    r->st = wsg_server_run(r->srv);
    atomic_store(&r->returned, 1);
    return NULL;
}

static void run_on_caller_thread_until_stop(void **state) {
    (void)state;
    struct runner r = {new_server(0), WSG_EINTERNAL, 0};
    wsg_server_on_message(r.srv, echo, NULL, NULL);
    assert_int_equal(wsg_server_listen(r.srv), WSG_OK);
    int port = server_port(r.srv);
    pthread_t th;
    pthread_create(&th, NULL, run_thread, &r);
    round_trip(port);
    assert_int_equal(atomic_load(&r.returned), 0);
    assert_int_equal(wsg_server_start(r.srv), WSG_ESTATE);
    assert_int_equal(wsg_server_stop(r.srv), WSG_OK);
    /* stop() returns only after run() has finished its loop. */
    pthread_join(th, NULL);
    assert_int_equal(r.st, WSG_OK);
    wsg_server_free(r.srv);
}

struct stopper {
    wsg_server *srv;
    wsg_status st;
};

static void *stop_thread(void *arg) {
    struct stopper *s = arg;
    s->st = wsg_server_stop(s->srv);
    return NULL;
}

static void concurrent_stops(void **state) {
    (void)state;
    for (int round = 0; round < 5; round++) {
        wsg_server *srv = new_server(0);
        assert_int_equal(wsg_server_start(srv), WSG_OK);
        struct stopper s[4];
        pthread_t th[4];
        for (int i = 0; i < 4; i++) {
            s[i].srv = srv;
            s[i].st = WSG_EINTERNAL;
            pthread_create(&th[i], NULL, stop_thread, &s[i]);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            assert_int_equal(s[i].st, WSG_OK);
        }
        wsg_server_free(srv);
    }
}

/* ---- a stop requested from a signal handler ---- */

/* What the handler reads: set before a signal can come, cleared before free. */
static wsg_server *_Atomic signal_target;
static atomic_int handler_status = -1;

static void request_stop_handler(int sig) {
    (void)sig;
    /* Only async-signal-safe calls here: this one and atomics. */
    atomic_store(&handler_status, wsg_server_request_stop(atomic_load(&signal_target)));
}

static void install_handler(int sig, struct sigaction *old) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = request_stop_handler;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(sig, &sa, old), 0);
}

/* A connected client that saw its echo, so the server holds one connection. */
static wsc *connected_client(wsg_server *srv, int port) {
    int status = 0;
    wsc *c = wsc_connect(HOST, port, "/", NULL, 3000, &status);
    assert_non_null(c);
    assert_int_equal(wsc_send_text(c, "hello"), 0);
    wsc_frame f;
    assert_int_equal(wsc_recv_message(c, &f, 3000), 1);
    assert_string_equal((char *)f.data, "hello");
    wsc_frame_free(&f);
    assert_true(WAIT_UNTIL(tu_conn_count(srv) == 1, 3000));
    return c;
}

/* The client sees close 1001 and answers it, as browsers do. */
static void expect_going_away(wsc *c) {
    int code = 0;
    assert_int_equal(wsc_wait_closed(c, 5000, 1, &code), 1);
    assert_int_equal(code, 1001);
    wsc_free(c);
}

/* The signal lands on the thread inside wsg_server_run (pthread_kill), or on
 * another thread (raise on this one): either way run() returns WSG_OK after
 * the graceful stop. */
static void signal_handler_stops_run(void **state) {
    (void)state;
    const int sigs[2] = {SIGUSR1, SIGTERM};
    for (int i = 0; i < 2; i++) {
        struct sigaction old;
        install_handler(sigs[i], &old);
        struct runner r = {new_server(0), WSG_EINTERNAL, 0};
        wsg_server_on_message(r.srv, echo, NULL, NULL);
        assert_int_equal(wsg_server_listen(r.srv), WSG_OK);
        int port = server_port(r.srv);
        atomic_store(&signal_target, r.srv);
        atomic_store(&handler_status, -1);
        pthread_t th;
        pthread_create(&th, NULL, run_thread, &r);
        wsc *c = connected_client(r.srv, port);
        if (sigs[i] == SIGUSR1)
            assert_int_equal(pthread_kill(th, SIGUSR1), 0);
        else
            assert_int_equal(raise(SIGTERM), 0);
        expect_going_away(c);
        assert_true(WAIT_UNTIL(atomic_load(&r.returned), 5000));
        pthread_join(th, NULL);
        assert_int_equal(atomic_load(&handler_status), WSG_OK);
        assert_int_equal(r.st, WSG_OK);
        /* The port is released; stop and free after it are no-ops. */
        assert_int_equal(wsg_server_port(r.srv, &port), WSG_ESTATE);
        assert_int_equal(wsc_tcp_connect(HOST, port, 500), -1);
        assert_int_equal(wsg_server_stop(r.srv), WSG_OK);
        atomic_store(&signal_target, NULL);
        wsg_server_free(r.srv);
        assert_int_equal(sigaction(sigs[i], &old, NULL), 0);
    }
}

/* A server on its own thread (wsg_server_start) ends its loop by itself;
 * wsg_server_stop then only joins. */
static void signal_handler_stops_a_started_server(void **state) {
    (void)state;
    struct sigaction old;
    install_handler(SIGUSR1, &old);
    wsg_server *srv = new_server(0);
    wsg_server_on_message(srv, echo, NULL, NULL);
    assert_int_equal(wsg_server_start(srv), WSG_OK);
    int port = server_port(srv);
    wsc *c = connected_client(srv, port);
    atomic_store(&signal_target, srv);
    assert_int_equal(raise(SIGUSR1), 0);
    expect_going_away(c);
    /* The loop ended without a wsg_server_stop: the port is gone. */
    assert_true(WAIT_UNTIL(wsg_server_port(srv, &port) == WSG_ESTATE, 5000));
    assert_int_equal(wsg_server_stop(srv), WSG_OK);
    /* The request was used up: a restart serves until told otherwise. */
    assert_int_equal(wsg_server_start(srv), WSG_OK);
    round_trip(server_port(srv));
    assert_int_equal(wsg_server_stop(srv), WSG_OK);
    atomic_store(&signal_target, NULL);
    wsg_server_free(srv);
    assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
}

static void request_stop_from_a_callback(wsg_server *s, wsg_conn_id id, wsg_msg_type type,
                                         const void *data, size_t len, void *user) {
    (void)id, (void)type, (void)data, (void)len;
    atomic_store((atomic_int *)user, wsg_server_request_stop(s));
}

static void request_stop_outside_a_run_is_harmless(void **state) {
    (void)state;
    /* NULL: WSG_EINVAL, and wsg_last_error() keeps the previous failure. */
    wsg_config *cfg;
    assert_int_equal(wsg_config_new(&cfg), WSG_OK);
    assert_int_equal(wsg_config_set_int(cfg, "no.such.option", 1), WSG_EINVAL);
    char before[256];
    snprintf(before, sizeof before, "%s", wsg_last_error());
    assert_int_equal(wsg_server_request_stop(NULL), WSG_EINVAL);
    assert_string_equal(wsg_last_error(), before);
    wsg_config_free(cfg);

    /* Never started: nothing happens, free is as usual (twice asked). */
    wsg_server *srv = new_server(0);
    assert_int_equal(wsg_server_request_stop(srv), WSG_OK);
    assert_int_equal(wsg_server_request_stop(srv), WSG_OK);
    wsg_server_free(srv);

    /* Asked before run: kept, so run() stops at once (a signal that came
     * early is not lost) and returns WSG_OK. */
    struct runner r = {new_server(0), WSG_EINTERNAL, 0};
    assert_int_equal(wsg_server_request_stop(r.srv), WSG_OK);
    pthread_t th;
    pthread_create(&th, NULL, run_thread, &r);
    assert_true(WAIT_UNTIL(atomic_load(&r.returned), 5000));
    pthread_join(th, NULL);
    assert_int_equal(r.st, WSG_OK);
    /* Used up by that run: the next one serves. */
    wsg_server_on_message(r.srv, echo, NULL, NULL);
    assert_int_equal(wsg_server_start(r.srv), WSG_OK);
    round_trip(server_port(r.srv));

    /* Stopped: harmless, and free after it is as usual. */
    assert_int_equal(wsg_server_stop(r.srv), WSG_OK);
    assert_int_equal(wsg_server_request_stop(r.srv), WSG_OK);
    wsg_server_free(r.srv);

    /* From a callback (the service thread): allowed, unlike wsg_server_stop. */
    atomic_int st = -1;
    srv = new_server(0);
    wsg_server_on_message(srv, request_stop_from_a_callback, &st, NULL);
    assert_int_equal(wsg_server_start(srv), WSG_OK);
    int port = server_port(srv), status = 0;
    wsc *c = wsc_connect(HOST, port, "/", NULL, 3000, &status);
    assert_non_null(c);
    assert_int_equal(wsc_send_text(c, "stop please"), 0);
    expect_going_away(c);
    assert_int_equal(atomic_load(&st), WSG_OK);
    assert_true(WAIT_UNTIL(wsg_server_port(srv, &port) == WSG_ESTATE, 5000));
    wsg_server_free(srv);
}

/* ---- callbacks ---- */
static atomic_int frees;
static void count_free(void *user) {
    (void)user;
    atomic_fetch_add(&frees, 1);
}

static void registration_rules_and_user_free(void **state) {
    (void)state;
    atomic_store(&frees, 0);
    wsg_server *srv = new_server(0);
    int a, b;
    assert_int_equal(wsg_server_on_message(srv, echo, &a, count_free), WSG_OK);
    /* Replacing a registration releases the old user pointer at once. */
    assert_int_equal(wsg_server_on_message(srv, echo, &b, count_free), WSG_OK);
    assert_int_equal(atomic_load(&frees), 1);
    assert_int_equal(wsg_server_on_open(srv, NULL, &a, count_free), WSG_OK);
    assert_int_equal(wsg_server_on_close(srv, NULL, &a, count_free), WSG_OK);
    assert_int_equal(wsg_server_on_log(srv, NULL, &a, count_free), WSG_OK);
    assert_int_equal(wsg_server_start(srv), WSG_OK);
    /* Not while listening or running. */
    assert_int_equal(wsg_server_on_message(srv, echo, &a, NULL), WSG_ESTATE);
    assert_int_equal(wsg_server_on_open(srv, NULL, NULL, NULL), WSG_ESTATE);
    assert_int_equal(atomic_load(&frees), 1);
    assert_int_equal(wsg_server_stop(srv), WSG_OK);
    assert_int_equal(atomic_load(&frees), 1);
    wsg_server_free(srv);
    /* Each remaining registration released exactly once. */
    assert_int_equal(atomic_load(&frees), 5);
}

/* ---- calls from inside callbacks ---- */
struct reentry {
    atomic_int stop_status;
    atomic_int run_status;
    atomic_int send_status;
    atomic_int count_ok;
    atomic_int done;
};

static void reenter(wsg_server *s, wsg_conn_id id, wsg_msg_type type, const void *data,
                    size_t len, void *user) {
    struct reentry *r = user;
    atomic_store(&r->stop_status, wsg_server_stop(s));
    atomic_store(&r->run_status, wsg_server_run(s));
    size_t n = 0;
    atomic_store(&r->count_ok, wsg_server_conn_count(s, &n) == WSG_OK && n == 1);
    atomic_store(&r->send_status, wsg_conn_send(s, id, type, data, len));
    wsg_server_free(s); /* refused: logged, nothing happens */
    atomic_store(&r->done, 1);
}

static void lifecycle_calls_from_callbacks_are_refused(void **state) {
    (void)state;
    struct reentry r = {-1, -1, -1, 0, 0};
    wsg_server *srv = new_server(0);
    wsg_server_on_message(srv, reenter, &r, NULL);
    assert_int_equal(wsg_server_start(srv), WSG_OK);
    int status;
    wsc *c = wsc_connect(HOST, server_port(srv), "/", NULL, 3000, &status);
    assert_non_null(c);
    assert_int_equal(wsc_send_text(c, "hi"), 0);
    assert_true(WAIT_UNTIL(atomic_load(&r.done), 3000));
    assert_int_equal(atomic_load(&r.stop_status), WSG_EBUSY);
    assert_int_equal(atomic_load(&r.run_status), WSG_EBUSY);
    assert_int_equal(atomic_load(&r.count_ok), 1);
    assert_int_equal(atomic_load(&r.send_status), WSG_OK);
    wsc_frame f;
    assert_int_equal(wsc_recv_message(c, &f, 3000), 1); /* the server still serves */
    assert_string_equal((char *)f.data, "hi");
    wsc_frame_free(&f);
    wsc_free(c);
    wsg_server_free(srv);
}

/* ---- errors ---- */
static void bind_conflict_is_an_io_error(void **state) {
    (void)state;
    wsg_server *first = new_server(0);
    assert_int_equal(wsg_server_start(first), WSG_OK);
    int port = server_port(first);
    wsg_server *second = new_server(port);
    assert_int_equal(wsg_server_start(second), WSG_EIO);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    assert_non_null(strstr(wsg_last_error(), want));
    assert_non_null(strstr(wsg_last_error(), "in use"));
    assert_int_equal(wsg_server_port(second, &port), WSG_ESTATE);
    /* The failed server can try again once the port is free. */
    wsg_server_free(first);
    assert_int_equal(wsg_server_start(second), WSG_OK);
    wsg_server_free(second);
}

/* ---- the log sink ---- */
struct log_capture {
    pthread_mutex_t mu;
    char events[64][16];
    int n;
    int bad_json;
    wsg_server *srv;   /* the server every event must name */
    int wrong_server;
};

static void capture_log(wsg_server *srv, wsg_log_level level, const char *event, const char *json,
                        size_t len, void *user) {
    struct log_capture *lc = user;
    pthread_mutex_lock(&lc->mu);
    if (srv != lc->srv) lc->wrong_server++;
    if (lc->n < 64) snprintf(lc->events[lc->n++], 16, "%s", event);
    if (len != strlen(json) || json[0] != '{' || json[len - 1] != '}' || !strstr(json, "\"event\":\"") ||
        level < WSG_LOG_DEBUG)
        lc->bad_json++;
    pthread_mutex_unlock(&lc->mu);
}

static int has_event(struct log_capture *lc, const char *name) {
    int found = 0;
    pthread_mutex_lock(&lc->mu);
    for (int i = 0; i < lc->n; i++) found |= !strcmp(lc->events[i], name);
    pthread_mutex_unlock(&lc->mu);
    return found;
}

static void log_callback_receives_structured_events(void **state) {
    (void)state;
    struct log_capture lc = {PTHREAD_MUTEX_INITIALIZER, {{0}}, 0, 0, NULL, 0};
    wsg_config *cfg;
    wsg_config_new(&cfg);
    wsg_config_set_string(cfg, "listen.host", HOST);
    wsg_config_set_int(cfg, "listen.port", 0);
    wsg_config_set_string(cfg, "log.level", "debug");
    wsg_config_set_string(cfg, "server.path", "/ws");
    wsg_server *srv;
    assert_int_equal(wsg_server_new(&srv, cfg), WSG_OK);
    wsg_config_free(cfg);
    lc.srv = srv;
    wsg_server_on_log(srv, capture_log, &lc, NULL);
    assert_int_equal(wsg_server_start(srv), WSG_OK);
    int port = server_port(srv), status;
    wsc *c = wsc_connect(HOST, port, "/ws", NULL, 3000, &status);
    assert_non_null(c);
    wsc_close(c, 1000, 3000);
    assert_null(wsc_connect(HOST, port, "/nope", NULL, 3000, &status));
    assert_int_equal(status, 404);
    assert_true(WAIT_UNTIL(has_event(&lc, "close") && has_event(&lc, "reject"), 3000));
    wsg_server_free(srv);
    assert_true(has_event(&lc, "listen"));
    assert_true(has_event(&lc, "accept"));
    assert_true(has_event(&lc, "open"));
    assert_true(has_event(&lc, "stop"));
    assert_int_equal(lc.bad_json, 0);
    assert_int_equal(lc.wrong_server, 0);
}

static void resources_return_after_cycles(void **state) {
    (void)state;
    int fds = tu_open_fds();
    for (int i = 0; i < 20; i++) {
        wsg_server *srv = new_server(0);
        wsg_server_on_message(srv, echo, NULL, NULL);
        assert_int_equal(wsg_server_start(srv), WSG_OK);
        if (i % 5 == 0) round_trip(server_port(srv));
        wsg_server_free(srv);
    }
    assert_int_equal(tu_open_fds(), fds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(new_and_free_without_running),
        cmocka_unit_test(start_stop_twice_and_restart),
        cmocka_unit_test(free_while_running_stops_first),
        cmocka_unit_test(listen_then_stop_or_free),
        cmocka_unit_test(run_on_caller_thread_until_stop),
        cmocka_unit_test(concurrent_stops),
        cmocka_unit_test(signal_handler_stops_run),
        cmocka_unit_test(signal_handler_stops_a_started_server),
        cmocka_unit_test(request_stop_outside_a_run_is_harmless),
        cmocka_unit_test(registration_rules_and_user_free),
        cmocka_unit_test(lifecycle_calls_from_callbacks_are_refused),
        cmocka_unit_test(bind_conflict_is_an_io_error),
        cmocka_unit_test(log_callback_receives_structured_events),
        cmocka_unit_test(resources_return_after_cycles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
