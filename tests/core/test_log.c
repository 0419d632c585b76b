/* The log under attack: a flood of refused requests is limited to
 * log.max_per_s lines per second with summaries that account for every
 * event, closes of established connections are always logged, network input
 * is escaped and capped, and no token source ever reaches the log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "wsclient.h"

#define FLOOD 400

/* One raw request on a new TCP connection; returns the HTTP status (0: none). */
static int raw_status(int port, const char *req) {
    int fd = wsc_tcp_connect("127.0.0.1", port, 2000);
    if (fd < 0) return 0;
    int status = 0;
    if (wsc_fd_send_all(fd, req, strlen(req), 2000) == 0) status = wsc_fd_read_response(fd, 3000, NULL);
    close(fd);
    return status;
}

/* The integer after "\"name\":" in json, or -1. */
static long json_int(const char *json, const char *name) {
    char key[64];
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *p = strstr(json, key);
    return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

/* Sum of `suppressed` over the log_suppressed summaries of `of`. */
static long suppressed_of(tsrv *t, const char *of) {
    char json[2048], want[64];
    snprintf(want, sizeof want, "\"of\":\"%s\"", of);
    long sum = 0;
    for (int i = 0; tsrv_log_get(t, "log_suppressed", i, json, sizeof json); i++)
        if (strstr(json, want)) sum += json_int(json, "suppressed");
    return sum;
}

static void a_flood_of_refusals_is_summarised_not_logged_line_by_line(void **state) {
    (void)state;
    const char *settings[] = {"log.level=info", "log.max_per_s=5",
                              "security.allowed_origins=https://app.example.com", NULL};
    tsrv *t = tsrv_start(settings, 1);
    assert_non_null(t);
    const char *req =
        "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "Origin: http://attacker.test\r\n\r\n";
    const int64_t t0 = tu_now_ms();
    /* Spread over about two seconds, so that windows roll over mid-flood. */
    for (int i = 0; i < FLOOD; i++) {
        assert_int_equal(raw_status(t->port, req), 403);
        tu_sleep_ms(5);
    }
    const int64_t took = tu_now_ms() - t0;
    /* Every refusal is accounted for once the last second's summary is out
     * (the tick flushes it after at most a second). */
    assert_true(WAIT_UNTIL(tsrv_log_count(t, "reject") + suppressed_of(t, "reject") == FLOOD, 4000));
    const int logged = tsrv_log_count(t, "reject");
    /* At most 5 per started second of the flood, plus the window that was
     * open when it began. */
    const long bound = 5 * (took / 1000 + 2);
    printf("# %d refusals in %lld ms: %d logged (bound %ld), %ld suppressed in %d summaries\n", FLOOD,
           (long long)took, logged, bound, suppressed_of(t, "reject"), tsrv_log_count(t, "log_suppressed"));
    assert_true(logged >= 5 * (took / 1000));
    assert_true(logged <= bound);
    /* The summary says which status it stands for. */
    char json[2048];
    assert_true(tsrv_log_get(t, "log_suppressed", 0, json, sizeof json));
    assert_int_equal(json_int(json, "status"), 403);
    assert_true(json_int(json, "window_ms") >= 0);
    assert_int_equal(tsrv_free(t), 0);
}

static void closes_and_opens_are_always_logged(void **state) {
    (void)state;
    const char *settings[] = {"log.level=info", "log.max_per_s=1", NULL};
    tsrv *t = tsrv_start(settings, 1);
    assert_non_null(t);
    enum { N = 150 };
    for (int i = 0; i < N; i++) {
        wsc *c = wsc_connect("127.0.0.1", t->port, "/", NULL, 2000, NULL);
        assert_non_null(c);
        /* Half close cleanly, half vanish: both are closes of established
         * connections. */
        if (i % 2)
            assert_int_equal(wsc_close(c, 1000, 2000), 1000);
        else
            wsc_abort(c);
    }
    assert_true(WAIT_UNTIL(tsrv_closes(t) == N, 5000));
    assert_true(WAIT_UNTIL(tsrv_log_count(t, "close") == N, 2000));
    assert_int_equal(tsrv_log_count(t, "open"), N);
    assert_int_equal(tsrv_log_count(t, "log_suppressed"), 0);
    assert_int_equal(tsrv_free(t), 0);
}

/* Events of different kinds (and statuses) have their own budgets: a flood
 * of one does not hide the first lines of another. */
static int reject_with_status(tsrv *t, long status) {
    char json[2048];
    for (int i = 0; tsrv_log_get(t, "reject", i, json, sizeof json); i++)
        if (json_int(json, "status") == status) return 1;
    return 0;
}

static void each_status_has_its_own_budget(void **state) {
    (void)state;
    const char *settings[] = {"log.level=info", "log.max_per_s=3", "server.path=/ws", NULL};
    tsrv *t = tsrv_start(settings, 1);
    assert_non_null(t);
    const char *not_found =
        "GET /nowhere HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    const char *bad_version =
        "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n";
    for (int i = 0; i < 40; i++) assert_int_equal(raw_status(t->port, not_found), 404);
    assert_int_equal(raw_status(t->port, bad_version), 426);
    /* The answer is written before the event is logged: wait for it. */
    assert_true(WAIT_UNTIL(reject_with_status(t, 426), 2000));
    assert_int_equal(tsrv_free(t), 0);
}

static void network_strings_are_escaped_and_capped(void **state) {
    (void)state;
    const char *settings[] = {"log.level=info", "server.path=/ws", NULL};
    tsrv *t = tsrv_start(settings, 1);
    assert_non_null(t);
    /* A 6,000-byte path with quotes and backslashes, refused with 404. */
    enum { PATH = 6000 };
    char *req = malloc(PATH + 512);
    assert_non_null(req);
    strcpy(req, "GET /");
    size_t n = strlen(req);
    for (int i = 0; i < PATH; i++) req[n++] = (i % 3 == 0) ? '"' : (i % 3 == 1 ? '\\' : 'a');
    strcpy(req + n,
           " HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    assert_int_equal(raw_status(t->port, req), 404);
    free(req);
    assert_true(WAIT_UNTIL(tsrv_log_count(t, "reject") == 1, 2000));
    char json[16384];
    assert_true(tsrv_log_get(t, "reject", 0, json, sizeof json));
    /* One line, and the path field is cut to the cap (512 bytes of text,
     * each quote or backslash escaped to two) with how much was left out. */
    assert_null(strchr(json, '\n'));
    assert_true(strlen(json) < 512 * 2 + 400);
    assert_non_null(strstr(json, "more bytes)"));
    assert_non_null(strstr(json, "\\\"\\\\a"));
    assert_int_equal(tsrv_free(t), 0);
}

/* A token never reaches the log, from whichever source it came, refused or
 * not, at debug level. */
static void no_token_source_reaches_the_log(void **state) {
    (void)state;
    char secret_file[] = "/tmp/wsg_test_log_secretXXXXXX";
    int sfd = mkstemp(secret_file);
    assert_true(sfd >= 0);
    const char key[] = "0123456789abcdef0123456789abcdef";
    assert_int_equal(write(sfd, key, sizeof key - 1), (ssize_t)(sizeof key - 1));
    close(sfd);
    char secret_setting[128];
    snprintf(secret_setting, sizeof secret_setting, "auth.jwt.secret_file=%s", secret_file);
    const char *settings[] = {"log.level=debug", "auth.mode=jwt", secret_setting,
                              "auth.jwt.algorithms=HS256", "auth.token_sources=header,query,cookie,subprotocol",
                              "server.subprotocols=chat", "server.path=/ws", NULL};
    tsrv *t = tsrv_start(settings, 1);
    unlink(secret_file);
    assert_non_null(t);
    const char *secret = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJTRUNSRVRVU0VSIn0.c2VjcmV0c2lnbmF0dXJlU0VDUkVU";
    const char *shapes[] = {
        "GET /ws?access_token=%s HTTP/1.1\r\nHost: h\r\n%s\r\n",
        "GET /nowhere?access_token=%s HTTP/1.1\r\nHost: h\r\n%s\r\n",
        "GET /ws HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer %s\r\n%s\r\n",
        "GET /ws HTTP/1.1\r\nHost: h\r\nCookie: access_token=%s\r\n%s\r\n",
        "GET /ws HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Protocol: chat, bearer.%s\r\n%s\r\n",
    };
    const char *ws =
        "Origin: http://h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        char req[2048];
        snprintf(req, sizeof req, shapes[i], secret, ws);
        int status = raw_status(t->port, req);
        assert_true(status == 401 || status == 404);
    }
    assert_true(WAIT_UNTIL(tsrv_log_count(t, "reject") == 5, 2000));
    /* Neither the token nor its signature part appear in any event. */
    pthread_mutex_lock(&t->mu);
    assert_non_null(t->log);
    assert_null(strstr(t->log, "c2VjcmV0c2lnbmF0dXJl"));
    assert_null(strstr(t->log, "eyJzdWIiOiJTRUNSRVRVU0VSIn0"));
    pthread_mutex_unlock(&t->mu);
    assert_int_equal(tsrv_free(t), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_flood_of_refusals_is_summarised_not_logged_line_by_line),
        cmocka_unit_test(closes_and_opens_are_always_logged),
        cmocka_unit_test(each_status_has_its_own_budget),
        cmocka_unit_test(network_strings_are_escaped_and_capped),
        cmocka_unit_test(no_token_source_reaches_the_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
