/* File-descriptor floods (issue 16, item 2): silent TCP connections that
 * never send a request. The server runs in a child process with a low
 * open-file limit (RLIMIT_NOFILE), so a few hundred sockets exhaust it and
 * the test needs no thousands. The parent is the attacker and the other
 * client; it asks the child over a pipe for its CPU time, its open-file
 * limit and its log events.
 *
 *   - a flood of silent connections from 127.0.0.1 does not lock out a
 *     client from 127.0.0.2: limits.max_connections_per_ip applies from
 *     accept, so the flood never reaches the descriptor limit;
 *   - out of descriptors (no per-IP limit), the server does not spin on
 *     accept() nor log each failure: one accept_failed event per episode,
 *     with counts, and it serves again once descriptors are free;
 *   - at start the soft limit is raised as far as the hard one allows, and
 *     fd_limit warns when limits.max_connections cannot be reached. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "wsclient.h"

#define FLOOD 300

/* ---- the server in a child process ---- */

typedef struct child {
    pid_t pid;
    int port;
    FILE *cmd; /* parent -> child, one command per line */
    FILE *res; /* child -> parent, one number per line */
} child;

static long long cpu_ms(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000LL + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

/* Log events named `event` whose JSON contains `with` ("-" for any) and,
 * unless `without` is "-", does not contain `without`. */
static int count_events(tsrv *t, const char *event, const char *with, const char *without) {
    static char line[8192];
    int n = 0;
    for (int i = 0; tsrv_log_get(t, event, i, line, sizeof line); i++) {
        if (strcmp(with, "-") && !strstr(line, with)) continue;
        if (strcmp(without, "-") && strstr(line, without)) continue;
        n++;
    }
    return n;
}

static void child_main(int cmd_fd, int res_fd, rlim_t soft, rlim_t hard, const char *const *settings) {
    struct rlimit rl = {soft, hard};
    /* Only the pipes are the child's: sockets of an earlier test (one that
     * failed half-way) would count against its low limit. */
    for (int fd = 3; fd < 65536; fd++)
        if (fd != cmd_fd && fd != res_fd) close(fd);
    FILE *res = fdopen(res_fd, "w");
    FILE *cmd = fdopen(cmd_fd, "r");
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        fprintf(res, "-1\n");
        fflush(res);
        _exit(1);
    }
    tsrv *t = tsrv_start(settings, 1);
    fprintf(res, "%d\n", t ? t->port : -1);
    fflush(res);
    if (!t) _exit(1);
    char line[512], event[64], with[256], without[256];
    while (fgets(line, sizeof line, cmd)) {
        long long v = -1;
        if (line[0] == 'c') {
            v = cpu_ms();
        } else if (line[0] == 'r') {
            getrlimit(RLIMIT_NOFILE, &rl);
            v = (long long)rl.rlim_cur;
        } else if (sscanf(line, "e %63s %255s %255s", event, with, without) == 3) {
            v = count_events(t, event, with, without);
        } else if (line[0] == 'q') {
            break;
        }
        fprintf(res, "%lld\n", v);
        fflush(res);
    }
    tsrv_free(t);
    _exit(0);
}

static int child_start(child *c, rlim_t soft, rlim_t hard, const char *const *settings) {
    int to_child[2], from_child[2];
    if (pipe(to_child) || pipe(from_child)) return -1;
    c->pid = fork();
    if (c->pid < 0) return -1;
    if (c->pid == 0) {
        close(to_child[1]);
        close(from_child[0]);
        child_main(to_child[0], from_child[1], soft, hard, settings);
    }
    close(to_child[0]);
    close(from_child[1]);
    c->cmd = fdopen(to_child[1], "w");
    c->res = fdopen(from_child[0], "r");
    if (fscanf(c->res, "%d", &c->port) != 1) return -1;
    return c->port > 0 ? 0 : -1;
}

__attribute__((format(printf, 2, 3))) static long long child_ask(child *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(c->cmd, fmt, ap);
    va_end(ap);
    fputc('\n', c->cmd);
    fflush(c->cmd);
    long long v = -1;
    if (fscanf(c->res, "%lld", &v) != 1) return -1;
    return v;
}

static int child_stop(child *c) {
    fprintf(c->cmd, "q\n");
    fflush(c->cmd);
    int status = 0;
    /* Bounded: a server that does not stop is killed, and the test fails. */
    for (int i = 0; i < 500; i++) {
        if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
            fclose(c->cmd);
            fclose(c->res);
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        tu_sleep_ms(10);
    }
    kill(c->pid, SIGKILL);
    waitpid(c->pid, &status, 0);
    fclose(c->cmd);
    fclose(c->res);
    return -1;
}

/* ---- clients ---- */

/* A TCP connection from `src` (a loopback address) to 127.0.0.1:port, -1
 * if it is not established within timeout_ms. */
static int tcp_from(const char *src, int port, int timeout_ms) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, src, &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) goto fail;
    a.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (errno != EINPROGRESS) goto fail;
        struct pollfd p = {fd, POLLOUT, 0};
        int err = 0;
        socklen_t el = sizeof err;
        if (poll(&p, 1, timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) goto fail;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
fail:
    close(fd);
    return -1;
}

/* The HTTP status a WebSocket upgrade from `src` gets (0: none in time). */
static int upgrade_from(const char *src, int port, int timeout_ms) {
    int fd = tcp_from(src, port, timeout_ms);
    if (fd < 0) return 0;
    static const char req[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n";
    int status = 0;
    if (wsc_fd_send_all(fd, req, sizeof req - 1, timeout_ms) == 0) status = wsc_fd_read_response(fd, timeout_ms, NULL);
    close(fd);
    return status;
}

/* Opens up to n silent connections from `src`; returns how many. */
static int flood(const char *src, int port, int *fds, int n) {
    int k = 0;
    for (int i = 0; i < n; i++) {
        int fd = tcp_from(src, port, 1000);
        if (fd >= 0) fds[k++] = fd;
    }
    return k;
}

static void close_all(int *fds, int n) {
    for (int i = 0; i < n; i++) close(fds[i]);
}

/* ---- tests ---- */

static void flood_from_one_address_leaves_room_for_another(void **state) {
    (void)state;
    /* 128 descriptors: without limits from accept the flood takes them all. */
    const char *s[] = {"limits.max_connections_per_ip=4", "heartbeat.handshake_timeout_ms=30000", "log.level=info",
                       NULL};
    child c;
    assert_int_equal(child_start(&c, 128, 128, s), 0);
    int fds[FLOOD];
    int n = flood("127.0.0.1", c.port, fds, FLOOD);
    assert_true(n > 150);
    tu_sleep_ms(300);
    /* The flood is closed at accept past 4 + 1 connections; 127.0.0.2 gets in. */
    assert_int_equal(upgrade_from("127.0.0.2", c.port, 3000), 101);
    /* The same address is still limited: 429 for the one let through, or closed. */
    int again = upgrade_from("127.0.0.1", c.port, 3000);
    assert_true(again == 0 || again == 429);
    /* Logged as one episode, not per connection. */
    assert_int_equal(child_ask(&c, "e accept_refused limits.max_connections_per_ip \"ended\""), 1);
    assert_int_equal(child_ask(&c, "e error accept -"), 0);
    close_all(fds, n);
    assert_int_equal(child_stop(&c), 0);
}

static void descriptor_exhaustion_backs_off_and_logs_once(void **state) {
    (void)state;
    const char *s[] = {"heartbeat.handshake_timeout_ms=2000", "log.level=info", NULL};
    child c;
    /* Soft 64, hard 128: raised to 128 at start, which cannot hold the
     * default limits.max_connections (10000): fd_limit says so. */
    assert_int_equal(child_start(&c, 64, 128, s), 0);
    int fds[FLOOD];
    int n = flood("127.0.0.1", c.port, fds, FLOOD);
    assert_true(n > 150);
    tu_sleep_ms(300);
    /* Out of descriptors with connections still queued: no busy loop. */
    long long cpu0 = child_ask(&c, "c");
    tu_sleep_ms(1000);
    long long cpu = child_ask(&c, "c") - cpu0;
    print_message("server CPU over 1 s while out of descriptors: %lld ms\n", cpu);
    assert_true(cpu < 250);
    /* One event for the episode, none per failed accept. */
    assert_int_equal(child_ask(&c, "e accept_failed \"errno\":24 \"ended\""), 1);
    assert_int_equal(child_ask(&c, "e error accept -"), 0);
    /* The flood goes; its accepted connections time out (2 s); then a
     * client gets in and the episode ends with its counts. */
    close_all(fds, n);
    int status = 0;
    int64_t deadline = tu_now_ms() + 8000;
    while ((status = upgrade_from("127.0.0.2", c.port, 1000)) != 101 && tu_now_ms() < deadline) tu_sleep_ms(100);
    assert_int_equal(status, 101);
    assert_true(WAIT_UNTIL(child_ask(&c, "e accept_failed \"ended\":true -") == 1, 5000));
    assert_int_equal(child_ask(&c, "e accept_failed \"closed\":0, -"), 0);
    /* The limit raised at start, and the warning (checked last: without
     * them, what comes before is what fails). */
    assert_int_equal(child_ask(&c, "r"), 128);
    assert_int_equal(child_ask(&c, "e fd_limit limits.max_connections -"), 1);
    assert_int_equal(child_stop(&c), 0);
}

static void enough_descriptors_no_warning(void **state) {
    (void)state;
    /* This process' own limits: 100 connections fit whatever they are
     * (unless the hard limit is tiny, which the test then reports). */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max < 1000) skip();
    const char *s[] = {"limits.max_connections=100", "log.level=info", NULL};
    tsrv *t = tsrv_start(s, 1);
    assert_non_null(t);
    assert_int_equal(tsrv_log_count(t, "fd_limit"), 0);
    char line[1024];
    assert_int_equal(tsrv_log_get(t, "listen", 0, line, sizeof line), 1);
    assert_non_null(strstr(line, "\"fd_limit\":"));
    tsrv_free(t);
}

int main(void) {
    /* A child that died must fail an assertion, not kill us with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    /* The children are forked before any server thread exists in this process. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(flood_from_one_address_leaves_room_for_another),
        cmocka_unit_test(descriptor_exhaustion_backs_off_and_logs_once),
        cmocka_unit_test(enough_descriptors_no_warning),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
