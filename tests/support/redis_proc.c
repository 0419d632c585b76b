#include "redis_proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "wsclient.h"

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int connect_to(int port, int timeout_ms) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    struct pollfd p = {fd, POLLOUT, 0};
    int err = 0;
    socklen_t el = sizeof err;
    if (poll(&p, 1, timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err) {
        close(fd);
        return -1;
    }
    return fd;
}

static int spawn(redis_proc *r) {
    char port[16];
    snprintf(port, sizeof port, "%d", r->port);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        /* A test that fails (cmocka leaves the test function) or crashes
         * does not reach rp_free: Redis goes with it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        const char *argv[20];
        int n = 0;
        argv[n++] = "redis-server";
        argv[n++] = "--port";
        argv[n++] = port;
        argv[n++] = "--bind";
        argv[n++] = "127.0.0.1";
        argv[n++] = "--save";
        argv[n++] = "";
        argv[n++] = "--appendonly";
        argv[n++] = "no";
        argv[n++] = "--dir";
        argv[n++] = r->dir;
        argv[n++] = "--logfile";
        argv[n++] = "";
        if (r->password[0]) {
            argv[n++] = "--requirepass";
            argv[n++] = r->password;
        }
        argv[n] = NULL;
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    r->pid = pid;
    /* Ready when it answers. */
    int64_t deadline = tu_now_ms() + 5000;
    while (tu_now_ms() < deadline) {
        const char *ping[] = {"PING"};
        char *reply = rp_query(r, 1, ping);
        int ok = reply && strcmp(reply, "PONG") == 0;
        free(reply);
        if (ok) return 0;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            r->pid = 0;
            return -1;
        }
        tu_sleep_ms(10);
    }
    return -1;
}

redis_proc *rp_start(const char *password) {
    redis_proc *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    snprintf(r->dir, sizeof r->dir, "/tmp/wsg-redis-XXXXXX");
    if (!mkdtemp(r->dir)) {
        free(r);
        return NULL;
    }
    if (password) snprintf(r->password, sizeof r->password, "%s", password);
    for (int attempt = 0; attempt < 3; attempt++) {
        r->port = free_port();
        snprintf(r->address, sizeof r->address, "127.0.0.1:%d", r->port);
        if (r->port > 0 && spawn(r) == 0) return r;
        rp_kill(r);
    }
    fprintf(stderr, "rp_start: redis-server did not start (is it installed? scripts/deps.sh)\n");
    rmdir(r->dir);
    free(r);
    return NULL;
}

int rp_restart(redis_proc *r) {
    if (r->pid) return 0;
    /* The old socket may linger a moment; retry briefly. */
    for (int attempt = 0; attempt < 20; attempt++) {
        if (spawn(r) == 0) return 0;
        rp_kill(r);
        tu_sleep_ms(50);
    }
    return -1;
}

void rp_kill(redis_proc *r) {
    if (!r || !r->pid) return;
    kill(r->pid, SIGCONT);
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = 0;
}

void rp_freeze(redis_proc *r) {
    if (r->pid) kill(r->pid, SIGSTOP);
}

void rp_thaw(redis_proc *r) {
    if (r->pid) kill(r->pid, SIGCONT);
}

void rp_free(redis_proc *r) {
    if (!r) return;
    if (r->pid) {
        kill(r->pid, SIGCONT);
        kill(r->pid, SIGTERM);
        int64_t deadline = tu_now_ms() + 2000;
        while (tu_now_ms() < deadline && waitpid(r->pid, NULL, WNOHANG) != r->pid) tu_sleep_ms(5);
        if (waitpid(r->pid, NULL, WNOHANG) == 0) rp_kill(r);
        r->pid = 0;
    }
    char path[128];
    snprintf(path, sizeof path, "%s/dump.rdb", r->dir);
    unlink(path);
    rmdir(r->dir);
    free(r);
}

/* ---- RESP ---- */

typedef struct {
    int fd;
    char buf[65536];
    size_t len, pos;
    int64_t deadline;
} reader;

static int fill(reader *rd) {
    if (rd->pos > 0) {
        memmove(rd->buf, rd->buf + rd->pos, rd->len - rd->pos);
        rd->len -= rd->pos;
        rd->pos = 0;
    }
    int64_t left = rd->deadline - tu_now_ms();
    if (left <= 0 || rd->len == sizeof rd->buf) return -1;
    struct pollfd p = {rd->fd, POLLIN, 0};
    if (poll(&p, 1, (int)left) != 1) return -1;
    ssize_t n = read(rd->fd, rd->buf + rd->len, sizeof rd->buf - rd->len);
    if (n <= 0) return -1;
    rd->len += (size_t)n;
    return 0;
}

/* One line without its CRLF into out (cap bytes). */
static int read_line(reader *rd, char *out, size_t cap) {
    for (;;) {
        for (size_t i = rd->pos; i + 1 < rd->len; i++) {
            if (rd->buf[i] == '\r' && rd->buf[i + 1] == '\n') {
                size_t n = i - rd->pos;
                if (n >= cap) n = cap - 1;
                memcpy(out, rd->buf + rd->pos, n);
                out[n] = 0;
                rd->pos = i + 2;
                return 0;
            }
        }
        if (fill(rd) != 0) return -1;
    }
}

static void append(char **out, size_t *len, const char *s, size_t n) {
    *out = realloc(*out, *len + n + 2);
    memcpy(*out + *len, s, n);
    *len += n;
    (*out)[*len] = 0;
}

static int read_reply(reader *rd, char **out, size_t *len) {
    char line[1024];
    if (read_line(rd, line, sizeof line) != 0) return -1;
    switch (line[0]) {
    case '+':
    case '-':
    case ':': append(out, len, line + 1, strlen(line + 1)); return 0;
    case '$': {
        long n = atol(line + 1);
        if (n < 0) return 0;
        while (rd->len - rd->pos < (size_t)n + 2)
            if (fill(rd) != 0) return -1;
        append(out, len, rd->buf + rd->pos, (size_t)n);
        rd->pos += (size_t)n + 2;
        return 0;
    }
    case '*': {
        long n = atol(line + 1);
        for (long i = 0; i < n; i++) {
            if (i) append(out, len, "\n", 1);
            if (read_reply(rd, out, len) != 0) return -1;
        }
        return 0;
    }
    default: return -1;
    }
}

static int send_command(int fd, int argc, const char *const *argv) {
    char head[32];
    int n = snprintf(head, sizeof head, "*%d\r\n", argc);
    if (wsc_fd_send_all(fd, head, (size_t)n, 1000) != 0) return -1;
    for (int i = 0; i < argc; i++) {
        size_t l = strlen(argv[i]);
        n = snprintf(head, sizeof head, "$%zu\r\n", l);
        if (wsc_fd_send_all(fd, head, (size_t)n, 1000) != 0 || wsc_fd_send_all(fd, argv[i], l, 1000) != 0 ||
            wsc_fd_send_all(fd, "\r\n", 2, 1000) != 0)
            return -1;
    }
    return 0;
}

char *rp_query(redis_proc *r, int argc, const char *const *argv) {
    int fd = connect_to(r->port, 1000);
    if (fd < 0) return NULL;
    reader *rd = calloc(1, sizeof *rd);
    char *out = NULL;
    size_t len = 0;
    if (!rd) goto done;
    rd->fd = fd;
    rd->deadline = tu_now_ms() + 2000;
    if (r->password[0]) {
        const char *auth[] = {"AUTH", r->password};
        char *ignored = NULL;
        size_t il = 0;
        if (send_command(fd, 2, auth) != 0 || read_reply(rd, &ignored, &il) != 0) {
            free(ignored);
            goto done;
        }
        free(ignored);
    }
    if (send_command(fd, argc, argv) != 0 || read_reply(rd, &out, &len) != 0) {
        free(out);
        out = NULL;
        goto done;
    }
    if (!out) out = calloc(1, 1);
done:
    free(rd);
    close(fd);
    return out;
}

int rp_channel_count(redis_proc *r, const char *pattern) {
    const char *argv[] = {"PUBSUB", "CHANNELS", pattern};
    char *reply = rp_query(r, 3, argv);
    if (!reply) return -1;
    int n = 0;
    if (reply[0]) {
        n = 1;
        for (const char *p = reply; *p; p++) n += *p == '\n';
    }
    free(reply);
    return n;
}

/* ---- an echo server ---- */

struct rp_echo {
    int listen_fd;
    int stop_pipe[2];
    pthread_t thread;
};

static void *echo_loop(void *arg) {
    rp_echo *e = arg;
    struct pollfd fds[34];
    int n = 2;
    fds[0] = (struct pollfd){e->listen_fd, POLLIN, 0};
    fds[1] = (struct pollfd){e->stop_pipe[0], POLLIN, 0};
    for (;;) {
        if (poll(fds, (nfds_t)n, 1000) < 0 && errno != EINTR) break;
        if (fds[1].revents) break;
        if (fds[0].revents & POLLIN) {
            int c = accept(e->listen_fd, NULL, NULL);
            if (c >= 0 && n < 34)
                fds[n++] = (struct pollfd){c, POLLIN, 0};
            else if (c >= 0)
                close(c);
        }
        for (int i = 2; i < n; i++) {
            if (!fds[i].revents) continue;
            char buf[4096];
            ssize_t got = read(fds[i].fd, buf, sizeof buf);
            if (got <= 0 || write(fds[i].fd, buf, (size_t)got) != got) {
                close(fds[i].fd);
                fds[i--] = fds[--n];
            }
        }
    }
    for (int i = 2; i < n; i++) close(fds[i].fd);
    return NULL;
}

rp_echo *rp_echo_start(int *port_out) {
    rp_echo *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (e->listen_fd < 0 || bind(e->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(e->listen_fd, 16) != 0 || getsockname(e->listen_fd, (struct sockaddr *)&a, &len) != 0 ||
        pipe(e->stop_pipe) != 0) {
        if (e->listen_fd >= 0) close(e->listen_fd);
        free(e);
        return NULL;
    }
    *port_out = ntohs(a.sin_port);
    if (pthread_create(&e->thread, NULL, echo_loop, e) != 0) {
        close(e->listen_fd);
        close(e->stop_pipe[0]);
        close(e->stop_pipe[1]);
        free(e);
        return NULL;
    }
    return e;
}

void rp_echo_free(rp_echo *e) {
    if (!e) return;
    if (write(e->stop_pipe[1], "x", 1) != 1) { /* the thread still ends on its next poll timeout */ }
    pthread_join(e->thread, NULL);
    close(e->listen_fd);
    close(e->stop_pipe[0]);
    close(e->stop_pipe[1]);
    free(e);
}
