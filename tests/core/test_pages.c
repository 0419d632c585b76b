/* Static pages (wsg_server_add_page): argument checks, the lifecycle rule,
 * and real HTTP requests on a loopback server: GET and HEAD answered with the
 * page, other methods 405, WebSocket handshakes on a page's path still
 * upgraded, other paths keeping their 426, each answer logged. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "wsclient.h"

#define HOST "127.0.0.1"
#define PAGE "<!doctype html><title>chat</title><p>hello</p>\n"
#define HTML "text/html; charset=utf-8"

/* A server with a log sink that keeps every "page" and "reject" event. */
typedef struct psrv {
    wsg_server *srv;
    int port;
    pthread_mutex_t mu;
    char events[64][512]; /* guarded by mu */
    int nevents;
} psrv;

static void on_log(wsg_server *s, wsg_log_level level, const char *event, const char *json,
                   size_t len, void *user) {
    (void)s;
    (void)level;
    psrv *p = user;
    if (strcmp(event, "page") && strcmp(event, "reject")) return;
    pthread_mutex_lock(&p->mu);
    if (p->nevents < 64) {
        size_t n = len < 511 ? len : 511;
        memcpy(p->events[p->nevents], json, n);
        p->events[p->nevents][n] = 0;
        p->nevents++;
    }
    pthread_mutex_unlock(&p->mu);
}

static void echo(wsg_server *s, wsg_conn_id id, wsg_msg_type type, const void *data, size_t len,
                 void *user) {
    (void)user;
    wsg_conn_send(s, id, type, data, len);
}

/* Not started: the test adds pages, then calls psrv_start. */
static psrv *psrv_new(const char *extra) {
    psrv *p = calloc(1, sizeof *p);
    assert_non_null(p);
    pthread_mutex_init(&p->mu, NULL);
    wsg_config *cfg;
    assert_int_equal(wsg_config_new(&cfg), WSG_OK);
    assert_int_equal(wsg_config_set_from_string(cfg, "listen.host=127.0.0.1"), WSG_OK);
    assert_int_equal(wsg_config_set_from_string(cfg, "listen.port=0"), WSG_OK);
    assert_int_equal(wsg_config_set_from_string(cfg, "log.level=debug"), WSG_OK);
    if (extra) assert_int_equal(wsg_config_set_from_string(cfg, extra), WSG_OK);
    assert_int_equal(wsg_server_new(&p->srv, cfg), WSG_OK);
    wsg_config_free(cfg);
    assert_int_equal(wsg_server_on_log(p->srv, on_log, p, NULL), WSG_OK);
    assert_int_equal(wsg_server_on_message(p->srv, echo, NULL, NULL), WSG_OK);
    return p;
}

static void psrv_start(psrv *p) {
    assert_int_equal(wsg_server_start(p->srv), WSG_OK);
    assert_int_equal(wsg_server_port(p->srv, &p->port), WSG_OK);
}

static void psrv_free(psrv *p) {
    wsg_server_free(p->srv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* How many kept events hold every one of the NULL-terminated fragments. */
static int events_with(psrv *p, ...) {
    int n = 0;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->nevents; i++) {
        va_list ap;
        va_start(ap, p);
        int all = 1;
        for (const char *frag; (frag = va_arg(ap, const char *));)
            if (!strstr(p->events[i], frag)) all = 0;
        va_end(ap);
        n += all;
    }
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* One whole answer: the request is sent, everything is read until the server
 * closes (a page answer ends the connection). */
typedef struct answer {
    int status;
    char *head; /* NUL-terminated, up to and including the blank line */
    unsigned char *body;
    size_t body_len;
} answer;

static answer request(psrv *p, const char *req) {
    int fd = wsc_tcp_connect(HOST, p->port, 3000);
    assert_true(fd >= 0);
    assert_int_equal(wsc_fd_send_all(fd, req, strlen(req), 3000), 0);
    size_t cap = 2 * 1024 * 1024 + 65536, got = 0;
    unsigned char *buf = malloc(cap + 1);
    assert_non_null(buf);
    int64_t deadline = tu_now_ms() + 10000;
    for (;;) {
        long r = wsc_fd_recv(fd, buf + got, cap - got, (int)(deadline - tu_now_ms()));
        if (r == 0) break;
        if (r < 0) fail_msg("reading the answer to %.40s: %s", req, r == -2 ? "timeout" : "error");
        got += (size_t)r;
        assert_true(got < cap);
    }
    close(fd);
    buf[got] = 0;
    answer a = {0};
    unsigned char *end = (unsigned char *)strstr((char *)buf, "\r\n\r\n");
    assert_non_null(end);
    size_t head_len = (size_t)(end - buf) + 4;
    a.head = malloc(head_len + 1);
    memcpy(a.head, buf, head_len);
    a.head[head_len] = 0;
    a.body_len = got - head_len;
    a.body = malloc(a.body_len + 1);
    memcpy(a.body, buf + head_len, a.body_len);
    free(buf);
    assert_int_equal(sscanf(a.head, "HTTP/1.1 %d ", &a.status), 1);
    return a;
}

static void answer_free(answer *a) {
    free(a->head);
    free(a->body);
}

static answer get(psrv *p, const char *method, const char *target) {
    char req[2048];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: " HOST "\r\nUser-Agent: test\r\n\r\n", method,
             target);
    return request(p, req);
}

static void arguments_are_checked(void **state) {
    (void)state;
    psrv *p = psrv_new(NULL);
    assert_int_equal(wsg_server_add_page(NULL, "/", HTML, PAGE, strlen(PAGE)), WSG_EINVAL);
    assert_int_equal(wsg_server_add_page(p->srv, "/", HTML, PAGE, strlen(PAGE)), WSG_OK);
    struct {
        const char *path, *type;
        const void *body;
        size_t len;
        const char *says;
    } bad[] = {
        {NULL, HTML, "x", 1, "path is NULL"},
        {"/", NULL, "x", 1, "content type is NULL"},
        {"/", HTML, NULL, 1, "body is NULL"},
        {"", HTML, "x", 1, "must start with '/'"},
        {"index.html", HTML, "x", 1, "must start with '/'"},
        {"/a b", HTML, "x", 1, "visible ASCII"},
        {"/a\tb", HTML, "x", 1, "visible ASCII"},
        {"/caf\xc3\xa9", HTML, "x", 1, "visible ASCII"},
        {"/?room=a", HTML, "x", 1, "'?' or '#'"},
        {"/#top", HTML, "x", 1, "'?' or '#'"},
        {"/", "", "x", 1, "content type is empty"},
        {"/", "text/html\r\nset-cookie: a=b", "x", 1, "printable ASCII"},
        {"/", " text/html", "x", 1, "space"},
        {"/", HTML, "x", 1024 * 1024 + 1, "larger than 1048576"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        wsg_status st = wsg_server_add_page(p->srv, bad[i].path, bad[i].type, bad[i].body, bad[i].len);
        if (st != WSG_EINVAL) fail_msg("case %zu: %s", i, wsg_status_str(st));
        if (!strstr(wsg_last_error(), bad[i].says))
            fail_msg("case %zu: '%s' does not say '%s'", i, wsg_last_error(), bad[i].says);
    }
    char long_path[1026];
    memset(long_path, 'a', sizeof long_path - 1);
    long_path[0] = '/';
    long_path[1025] = 0;
    assert_int_equal(wsg_server_add_page(p->srv, long_path, HTML, "x", 1), WSG_EINVAL);
    assert_non_null(strstr(wsg_last_error(), "longer than 1024"));
    long_path[1024] = 0; /* exactly 1024 bytes */
    assert_int_equal(wsg_server_add_page(p->srv, long_path, HTML, "x", 1), WSG_OK);
    /* The failed calls changed nothing: "/" keeps its page, nothing else is one. */
    psrv_start(p);
    answer a = get(p, "GET", "/");
    assert_int_equal(a.status, 200);
    assert_int_equal(a.body_len, strlen(PAGE));
    assert_memory_equal(a.body, PAGE, a.body_len);
    answer_free(&a);
    a = get(p, "GET", "/a");
    assert_int_equal(a.status, 426);
    answer_free(&a);
    a = get(p, "GET", long_path);
    assert_int_equal(a.status, 200);
    answer_free(&a);
    psrv_free(p);
}

static void get_and_head_answer_the_page(void **state) {
    (void)state;
    psrv *p = psrv_new(NULL);
    assert_int_equal(wsg_server_add_page(p->srv, "/", HTML, PAGE, strlen(PAGE)), WSG_OK);
    psrv_start(p);
    answer a = get(p, "GET", "/");
    char want[512];
    snprintf(want, sizeof want,
             "HTTP/1.1 200 OK\r\ncontent-type: " HTML "\r\ncontent-length: %zu\r\n"
             "cache-control: no-cache\r\nx-content-type-options: nosniff\r\nconnection: close\r\n\r\n",
             strlen(PAGE));
    assert_string_equal(a.head, want);
    assert_int_equal(a.body_len, strlen(PAGE));
    assert_memory_equal(a.body, PAGE, a.body_len);
    answer_free(&a);
    /* The query is not part of the path. */
    a = get(p, "GET", "/?room=lobby&name=ann");
    assert_int_equal(a.status, 200);
    assert_int_equal(a.body_len, strlen(PAGE));
    answer_free(&a);
    /* HEAD: the same head (content-length included), no body. */
    a = get(p, "HEAD", "/");
    assert_string_equal(a.head, want);
    assert_int_equal(a.body_len, 0);
    answer_free(&a);
    /* HTTP/1.0 needs no Host; the answer is HTTP/1.1 as RFC 7230 2.6 allows. */
    a = request(p, "GET / HTTP/1.0\r\n\r\n");
    assert_int_equal(a.status, 200);
    assert_int_equal(a.body_len, strlen(PAGE));
    answer_free(&a);
    /* An Upgrade the server does not speak (h2c) is ignored (RFC 7230 6.7). */
    a = request(p, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                   "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n");
    assert_int_equal(a.status, 200);
    answer_free(&a);
    assert_true(WAIT_UNTIL(events_with(p, "\"event\":\"page\"", "\"path\":\"/\"", "\"status\":200", NULL) == 5,
                           3000));
    assert_int_equal(events_with(p, "\"method\":\"HEAD\"", "\"bytes\":0", NULL), 1);
    char bytes[32];
    snprintf(bytes, sizeof bytes, "\"bytes\":%zu", strlen(PAGE));
    assert_int_equal(events_with(p, "\"method\":\"GET\"", bytes, "\"peer\":\"127.0.0.1\"", NULL), 4);
    psrv_free(p);
}

static void other_requests_are_refused(void **state) {
    (void)state;
    psrv *p = psrv_new(NULL);
    assert_int_equal(wsg_server_add_page(p->srv, "/", HTML, PAGE, strlen(PAGE)), WSG_OK);
    psrv_start(p);
    const char *methods[] = {"POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
        answer a = get(p, methods[i], "/");
        if (a.status != 405) fail_msg("%s: %d", methods[i], a.status);
        assert_non_null(strstr(a.head, "\r\nallow: GET, HEAD\r\n"));
        answer_free(&a);
    }
    /* HTTP/1.1 needs exactly one Host. */
    answer a = request(p, "GET / HTTP/1.1\r\n\r\n");
    assert_int_equal(a.status, 400);
    answer_free(&a);
    a = request(p, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    assert_int_equal(a.status, 400);
    answer_free(&a);
    /* Paths without a page keep their answers: 426 (the WebSocket path is "/"). */
    const char *others[] = {"/index.html", "//", "/%2F", "/chat"};
    for (size_t i = 0; i < sizeof others / sizeof *others; i++) {
        a = get(p, "GET", others[i]);
        if (a.status != 426) fail_msg("%s: %d", others[i], a.status);
        answer_free(&a);
    }
    assert_true(WAIT_UNTIL(events_with(p, "\"event\":\"reject\"", "\"status\":405", NULL) == 5, 3000));
    assert_true(WAIT_UNTIL(events_with(p, "\"event\":\"reject\"", "\"status\":426", NULL) == 4, 3000));
    assert_int_equal(events_with(p, "\"event\":\"page\"", NULL), 0);
    psrv_free(p);

    /* With server.path elsewhere, a page is still served and others get 404. */
    p = psrv_new("server.path=/chat");
    assert_int_equal(wsg_server_add_page(p->srv, "/", HTML, PAGE, strlen(PAGE)), WSG_OK);
    psrv_start(p);
    a = get(p, "GET", "/");
    assert_int_equal(a.status, 200);
    answer_free(&a);
    a = get(p, "GET", "/chat");
    assert_int_equal(a.status, 426);
    answer_free(&a);
    int status = 0;
    assert_null(wsc_connect(HOST, p->port, "/", NULL, 3000, &status));
    assert_int_equal(status, 404);
    psrv_free(p);
}

static void websocket_on_a_page_path_upgrades(void **state) {
    (void)state;
    psrv *p = psrv_new(NULL);
    assert_int_equal(wsg_server_add_page(p->srv, "/", HTML, PAGE, strlen(PAGE)), WSG_OK);
    psrv_start(p);
    int status = 0;
    wsc *c = wsc_connect(HOST, p->port, "/?room=a", NULL, 3000, &status);
    assert_int_equal(status, 101);
    assert_non_null(c);
    /* A page request beside an open WebSocket leaves it alone. */
    answer a = get(p, "GET", "/");
    assert_int_equal(a.status, 200);
    answer_free(&a);
    assert_int_equal(wsc_send_text(c, "still here"), 0);
    wsc_frame f;
    assert_int_equal(wsc_recv_message(c, &f, 5000), 1);
    assert_int_equal(f.len, 10);
    assert_memory_equal(f.data, "still here", 10);
    wsc_frame_free(&f);
    assert_int_equal(wsc_close(c, 1000, 3000), 1000);
    psrv_free(p);
}

static void pages_only_before_listening(void **state) {
    (void)state;
    psrv *p = psrv_new(NULL);
    assert_int_equal(wsg_server_listen(p->srv), WSG_OK);
    assert_int_equal(wsg_server_add_page(p->srv, "/", HTML, PAGE, strlen(PAGE)), WSG_ESTATE);
    assert_non_null(strstr(wsg_last_error(), "before wsg_server_listen"));
    assert_int_equal(wsg_server_start(p->srv), WSG_OK);
    assert_int_equal(wsg_server_add_page(p->srv, "/", HTML, PAGE, strlen(PAGE)), WSG_ESTATE);
    assert_int_equal(wsg_server_port(p->srv, &p->port), WSG_OK);
    answer a = get(p, "GET", "/");
    assert_int_equal(a.status, 426); /* the refused page was not added */
    answer_free(&a);
    /* Stopped, the server takes pages again; the next start serves them. */
    assert_int_equal(wsg_server_stop(p->srv), WSG_OK);
    assert_int_equal(wsg_server_add_page(p->srv, "/", HTML, PAGE, strlen(PAGE)), WSG_OK);
    psrv_start(p);
    a = get(p, "GET", "/");
    assert_int_equal(a.status, 200);
    answer_free(&a);
    psrv_free(p);
}

static void bodies_are_copied_whole(void **state) {
    (void)state;
    psrv *p = psrv_new(NULL);
    /* The largest body, binary with NULs; the caller's buffer is freed at once. */
    size_t big = 1024 * 1024;
    unsigned char *buf = malloc(big);
    for (size_t i = 0; i < big; i++) buf[i] = (unsigned char)(i * 31 + (i >> 9));
    assert_int_equal(wsg_server_add_page(p->srv, "/big.bin", "application/octet-stream", buf, big), WSG_OK);
    unsigned char *want = malloc(big);
    memcpy(want, buf, big);
    memset(buf, 0, big);
    free(buf);
    assert_int_equal(wsg_server_add_page(p->srv, "/empty", "text/plain", NULL, 0), WSG_OK);
    /* A second page at a path replaces the first. */
    assert_int_equal(wsg_server_add_page(p->srv, "/v", "text/plain", "one", 3), WSG_OK);
    assert_int_equal(wsg_server_add_page(p->srv, "/v", "text/css", "two!", 4), WSG_OK);
    psrv_start(p);
    answer a = get(p, "GET", "/big.bin");
    assert_int_equal(a.status, 200);
    assert_non_null(strstr(a.head, "content-length: 1048576\r\n"));
    assert_int_equal(a.body_len, big);
    assert_memory_equal(a.body, want, big);
    answer_free(&a);
    free(want);
    a = get(p, "GET", "/empty");
    assert_int_equal(a.status, 200);
    assert_non_null(strstr(a.head, "content-length: 0\r\n"));
    assert_int_equal(a.body_len, 0);
    answer_free(&a);
    a = get(p, "GET", "/v");
    assert_non_null(strstr(a.head, "content-type: text/css\r\n"));
    assert_int_equal(a.body_len, 4);
    assert_memory_equal(a.body, "two!", 4);
    answer_free(&a);
    psrv_free(p);
}

/* A page's link answers one request: a pipelined second one gets nothing,
 * and the link ends after the first answer. */
static void one_answer_per_link(void **state) {
    (void)state;
    psrv *p = psrv_new(NULL);
    assert_int_equal(wsg_server_add_page(p->srv, "/", HTML, PAGE, strlen(PAGE)), WSG_OK);
    psrv_start(p);
    int fd = wsc_tcp_connect(HOST, p->port, 3000);
    assert_true(fd >= 0);
    const char *req = "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(wsc_fd_send_all(fd, req, strlen(req), 3000), 0);
    char buf[8192];
    size_t got = 0;
    for (;;) {
        long r = wsc_fd_recv(fd, buf + got, sizeof buf - 1 - got, 5000);
        if (r == -2) fail_msg("the page's link is still open after %zu bytes", got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = 0;
    assert_true(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_null(strstr(buf + 1, "HTTP/1.1"));
    const char *body = strstr(buf, "\r\n\r\n");
    assert_non_null(body);
    assert_string_equal(body + 4, PAGE); /* the page once, nothing after it */
    assert_true(WAIT_UNTIL(events_with(p, "\"event\":\"page\"", NULL) == 1, 3000));
    psrv_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(arguments_are_checked),
        cmocka_unit_test(get_and_head_answer_the_page),
        cmocka_unit_test(other_requests_are_refused),
        cmocka_unit_test(websocket_on_a_page_path_upgrades),
        cmocka_unit_test(pages_only_before_listening),
        cmocka_unit_test(bodies_are_copied_whole),
        cmocka_unit_test(one_answer_per_link),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
