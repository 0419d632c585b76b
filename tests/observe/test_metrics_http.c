/* The metrics listener (metrics.listen) under load: real clients echo
 * through the server while /metrics is scraped over HTTP; the values must
 * match what the clients did (connections open, messages and bytes, closes
 * by cause and code, refusals by reason), the text must pass Prometheus'
 * own `promtool check metrics` (Debian package prometheus; missing is a
 * failure, not a skip), /healthz and /readyz answer 200, and /readyz turns
 * 503 as soon as a stop begins. wsg_server_metrics returns the same text. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "wsclient.h"

#define HOST "127.0.0.1"
#define CLIENTS 20
#define MSG "0123456789abcdef" /* 16 bytes */

/* GET `path` from the metrics listener: the status, and the body (malloc'd). */
static int http_get(int port, const char *method, const char *path, char **body) {
    *body = NULL;
    int fd = wsc_tcp_connect(HOST, port, 5000);
    if (fd < 0) return -1;
    char req[256];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", method, path);
    if (wsc_fd_send_all(fd, req, strlen(req), 5000) != 0) {
        close(fd);
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 4096 > cap) buf = realloc(buf, cap *= 2);
        long n = wsc_fd_recv(fd, buf + len, cap - len - 1, 5000);
        if (n <= 0) break; /* EOF: the server closes after the answer */
        len += (size_t)n;
    }
    close(fd);
    buf[len] = 0;
    int status = 0;
    if (sscanf(buf, "HTTP/1.1 %d", &status) != 1) {
        free(buf);
        return -1;
    }
    char *start = strstr(buf, "\r\n\r\n");
    *body = strdup(start ? start + 4 : "");
    free(buf);
    return status;
}

/* The value of one series ("name" or "name{label=\"v\"}"), -1 when absent. */
static double value_of(const char *text, const char *series) {
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') return strtod(p + n + 1, NULL);
    }
    return -1;
}

/* promtool check metrics < text: 0 when it passes. */
static int promtool_check(const char *text) {
    char path[] = "/tmp/wsg-metrics-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
    int rc = system(cmd);
    unlink(path);
    return rc;
}

static void promtool_is_installed(void **state) {
    (void)state;
    /* The validation below must not silently vanish: no promtool, no pass. */
    if (system("command -v promtool > /dev/null 2>&1") != 0)
        fail_msg("promtool is missing: install the Debian package prometheus (scripts/deps.sh does)");
}

/* Accepts the token "good"; refuses anything else with 401. */
static void auth(wsg_server *s, wsg_auth_request *req, void *user) {
    (void)s;
    (void)user;
    const char *token = "";
    wsg_auth_request_get(req, WSG_AUTH_TOKEN, &token);
    if (strcmp(token, "good") == 0)
        wsg_auth_accept(req, NULL);
    else
        wsg_auth_refuse(req, 401, "bad token");
}

struct load {
    wsc **cs;
    int n;
    atomic_int stop;
    atomic_long sent, received;
    int failures;
};

/* Each round: one message to every client, then every echo read back. */
static void *run_load(void *arg) {
    struct load *l = arg;
    while (!atomic_load(&l->stop)) {
        for (int i = 0; i < l->n; i++) {
            if (wsc_send_text(l->cs[i], MSG) != 0) l->failures++;
            atomic_fetch_add(&l->sent, 1);
        }
        for (int i = 0; i < l->n; i++) {
            wsc_frame f;
            if (wsc_recv_message(l->cs[i], &f, 5000) != 1) {
                l->failures++;
                continue;
            }
            if (f.len == 16) atomic_fetch_add(&l->received, 1);
            wsc_frame_free(&f);
        }
    }
    return NULL;
}

static void *stop_server(void *srv) {
    wsg_server_stop(srv);
    return NULL;
}

static void scrape_during_load_and_after_closes(void **state) {
    (void)state;
    const char *settings[] = {"metrics.listen=127.0.0.1:0", "server.path=/ws", "auth.mode=callback",
                              "security.allowed_origins=https://good.example", "server.shutdown_timeout_ms=1500",
                              NULL};
    tsrv *t = tsrv_start_auth(settings, 1, auth);
    assert_non_null(t);
    int mport = 0;
    assert_int_equal(wsg_server_metrics_port(t->srv, &mport), WSG_OK);
    assert_true(mport > 0 && mport != t->port);

    char *body;
    assert_int_equal(http_get(mport, "GET", "/healthz", &body), 200);
    free(body);
    assert_int_equal(http_get(mport, "GET", "/readyz", &body), 200);
    free(body);
    int ready = -1;
    assert_int_equal(wsg_server_ready(t->srv, &ready), WSG_OK);
    assert_int_equal(ready, 1);

    /* Refusals, one of each kind this configuration can give. */
    int status = 0;
    assert_null(wsc_connect(HOST, t->port, "/ws", "Origin: https://evil.example\r\n"
                            "Authorization: Bearer good\r\n", 5000, &status));
    assert_int_equal(status, 403);
    assert_null(wsc_connect(HOST, t->port, "/ws", "Authorization: Bearer bad\r\n", 5000, &status));
    assert_int_equal(status, 401);
    assert_null(wsc_connect(HOST, t->port, "/elsewhere", "Authorization: Bearer good\r\n", 5000, &status));
    assert_int_equal(status, 404);

    wsc *cs[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        cs[i] = wsc_connect(HOST, t->port, "/ws", "Authorization: Bearer good\r\n", 5000, NULL);
        assert_non_null(cs[i]);
    }
    assert_true(WAIT_UNTIL(tu_conn_count(t->srv) == CLIENTS, 5000));

    struct load l = {.cs = cs, .n = CLIENTS};
    pthread_t th;
    pthread_create(&th, NULL, run_load, &l);
    assert_true(WAIT_UNTIL(atomic_load(&l.received) >= 2000, 20000));

    /* Scraped while the echo runs. */
    assert_int_equal(http_get(mport, "GET", "/metrics", &body), 200);
    const long sent_after = atomic_load(&l.sent);
    assert_int_equal(promtool_check(body), 0);
    assert_true(value_of(body, "wsgate_connections") == CLIENTS);
    assert_true(value_of(body, "wsgate_handshakes_accepted_total") == CLIENTS);
    assert_true(value_of(body, "wsgate_handshake_duration_seconds_count{transport=\"tcp\"}") == CLIENTS);
    assert_true(value_of(body, "wsgate_handshakes_refused_total{reason=\"origin\"}") == 1);
    assert_true(value_of(body, "wsgate_handshakes_refused_total{reason=\"auth\"}") == 1);
    assert_true(value_of(body, "wsgate_handshakes_refused_total{reason=\"path\"}") == 1);
    assert_true(value_of(body, "wsgate_handshakes_refused_total{reason=\"limit\"}") == 0);
    assert_true(value_of(body, "wsgate_auth_failures_total{reason=\"refused\"}") == 1);
    const double in = value_of(body, "wsgate_received_messages_total");
    const double out = value_of(body, "wsgate_sent_messages_total");
    assert_true(in >= 2000 && in <= (double)sent_after);
    assert_true(out <= in && out >= in - 2 * CLIENTS); /* echoes lag by at most the messages in flight */
    assert_true(value_of(body, "wsgate_received_bytes_total") == 16 * in);
    assert_true(value_of(body, "wsgate_sent_bytes_total") == 16 * out);
    assert_true(value_of(body, "wsgate_closes_total{cause=\"peer\"}") == 0);
    assert_true(value_of(body, "wsgate_ready") == 1);
    free(body);

    atomic_store(&l.stop, 1);
    pthread_join(th, NULL);
    assert_int_equal(l.failures, 0);

    /* Close some: 5 by the client (1000), 3 lost (reset), 2 by the server (4001). */
    wsg_conn_id ids[CLIENTS];
    size_t n = 0;
    assert_int_equal(wsg_server_conn_ids(t->srv, ids, CLIENTS, &n), WSG_OK);
    assert_int_equal(n, CLIENTS);
    for (int i = 0; i < 5; i++) assert_int_equal(wsc_close(cs[i], 1000, 5000), 1000);
    for (int i = 5; i < 8; i++) wsc_abort(cs[i]);
    assert_true(WAIT_UNTIL(tu_conn_count(t->srv) == CLIENTS - 8, 5000));
    assert_int_equal(wsg_server_conn_ids(t->srv, ids, CLIENTS, &n), WSG_OK);
    assert_int_equal(n, CLIENTS - 8);
    assert_int_equal(wsg_conn_close(t->srv, ids[0], 4001, "bye"), WSG_OK);
    assert_int_equal(wsg_conn_close(t->srv, ids[1], 4001, "bye"), WSG_OK);
    /* Whichever two the server closed answer its close; the others stay. */
    int answered = 0;
    for (int64_t deadline = tu_now_ms() + 10000; answered < 2 && tu_now_ms() < deadline;) {
        for (int i = 8; i < CLIENTS; i++) {
            wsc_frame f;
            if (!cs[i] || wsc_recv_frame(cs[i], &f, 10) != 1) continue;
            if (f.opcode == 8) {
                wsc_send_close(cs[i], 4001, "bye");
                wsc_wait_closed(cs[i], 5000, 0, NULL);
                wsc_free(cs[i]);
                cs[i] = NULL;
                answered++;
            }
            wsc_frame_free(&f);
        }
    }
    assert_int_equal(answered, 2);
    assert_true(WAIT_UNTIL(tu_conn_count(t->srv) == CLIENTS - 10, 5000));

    assert_int_equal(http_get(mport, "GET", "/metrics", &body), 200);
    assert_int_equal(promtool_check(body), 0);
    assert_true(value_of(body, "wsgate_connections") == CLIENTS - 10);
    assert_true(value_of(body, "wsgate_closes_total{cause=\"peer\"}") == 5);
    assert_true(value_of(body, "wsgate_closes_total{cause=\"lost\"}") == 3);
    assert_true(value_of(body, "wsgate_closes_total{cause=\"app\"}") == 2);
    assert_true(value_of(body, "wsgate_close_codes_total{code=\"1000\"}") == 5);
    assert_true(value_of(body, "wsgate_close_codes_total{code=\"1006\"}") == 3);
    assert_true(value_of(body, "wsgate_close_codes_total{code=\"4xxx\"}") == 2);
    assert_true(value_of(body, "wsgate_queued_bytes") == 0);

    /* The C call gives the same text (counters do not move while idle). */
    size_t len = 0;
    assert_int_equal(wsg_server_metrics(t->srv, NULL, 0, &len), WSG_OK);
    assert_true(len > 1000);
    char small[16] = "untouched";
    size_t len2 = 0;
    assert_int_equal(wsg_server_metrics(t->srv, small, sizeof small, &len2), WSG_OK);
    assert_int_equal(len2, len);
    assert_string_equal(small, ""); /* did not fit */
    char *text = malloc(len + 4096);
    assert_int_equal(wsg_server_metrics(t->srv, text, len + 4096, &len), WSG_OK);
    assert_int_equal(strlen(text), len);
    assert_string_equal(text, body);
    free(text);
    free(body);
    assert_int_equal(wsg_server_metrics(t->srv, NULL, 1, &len), WSG_EINVAL);
    assert_int_equal(wsg_server_metrics(t->srv, NULL, 0, NULL), WSG_EINVAL);
    assert_int_equal(wsg_server_metrics(NULL, NULL, 0, &len), WSG_EINVAL);

    /* Other paths and methods. */
    assert_int_equal(http_get(mport, "GET", "/nothing", &body), 404);
    free(body);
    assert_int_equal(http_get(mport, "POST", "/metrics", &body), 405);
    free(body);
    assert_int_equal(http_get(mport, "HEAD", "/metrics", &body), 200);
    assert_string_equal(body, "");
    free(body);

    /* A stop begins: the remaining clients do not answer its close, so it
     * lasts server.shutdown_timeout_ms; meanwhile the server is alive but
     * not ready. */
    pthread_t stopper;
    pthread_create(&stopper, NULL, stop_server, t->srv);
    assert_true(WAIT_UNTIL(wsg_server_ready(t->srv, &ready) == WSG_OK && ready == 0, 2000));
    int readyz = http_get(mport, "GET", "/readyz", &body);
    free(body);
    int healthz = http_get(mport, "GET", "/healthz", &body);
    free(body);
    pthread_join(stopper, NULL);
    assert_int_equal(readyz, 503);
    assert_int_equal(healthz, 200);
    assert_int_equal(wsg_server_metrics_port(t->srv, &mport), WSG_ESTATE);
    for (int i = 8; i < CLIENTS; i++)
        if (cs[i]) wsc_free(cs[i]);
    assert_int_equal(tsrv_free(t), 0);
}

static void no_listener_without_the_option(void **state) {
    (void)state;
    tsrv *t = tsrv_start(NULL, 0);
    assert_non_null(t);
    int p = 0;
    assert_int_equal(wsg_server_metrics_port(t->srv, &p), WSG_ESTATE);
    assert_non_null(strstr(wsg_last_error(), "metrics.listen"));
    /* Ready as soon as wsg_server_start returns. */
    int ready = 0;
    assert_int_equal(wsg_server_ready(t->srv, &ready), WSG_OK);
    assert_int_equal(ready, 1);
    assert_int_equal(wsg_server_ready(t->srv, NULL), WSG_EINVAL);
    assert_int_equal(wsg_server_stop(t->srv), WSG_OK);
    assert_int_equal(wsg_server_ready(t->srv, &ready), WSG_OK);
    assert_int_equal(ready, 0);
    assert_int_equal(tsrv_free(t), 0);
}

static void bad_addresses_are_refused_with_the_form(void **state) {
    (void)state;
    wsg_config *cfg;
    assert_int_equal(wsg_config_new(&cfg), WSG_OK);
    const char *bad[] = {"localhost:9100", "1.2.3.4:", "::1:9100", "[::1]", "127.0.0.1:70000", "x", ":"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(wsg_config_set_string(cfg, "metrics.listen", bad[i]), WSG_EINVAL);
        assert_non_null(strstr(wsg_last_error(), "metrics.listen"));
    }
    const char *good[] = {"9100", "0", "127.0.0.1:9100", "[::1]:9100", "0.0.0.0:0", ""};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_int_equal(wsg_config_set_string(cfg, "metrics.listen", good[i]), WSG_OK);
    /* Same port as the WebSocket listener: refused when the server is made. */
    assert_int_equal(wsg_config_set_int(cfg, "listen.port", 9100), WSG_OK);
    assert_int_equal(wsg_config_set_string(cfg, "metrics.listen", "9100"), WSG_OK);
    wsg_server *s = NULL;
    assert_int_equal(wsg_server_new(&s, cfg), WSG_EINVAL);
    assert_null(s);
    assert_non_null(strstr(wsg_last_error(), "its own port"));
    wsg_config_free(cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(promtool_is_installed),
        cmocka_unit_test(scrape_during_load_and_after_closes),
        cmocka_unit_test(no_listener_without_the_option),
        cmocka_unit_test(bad_addresses_are_refused_with_the_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
