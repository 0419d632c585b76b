/* bench-epoll-baseline: the thinnest WebSocket server we can write, to mark
 * the physical limit of the machine for the benchmarks.
 *
 *   bench-epoll-baseline [--host ADDR] [--port N] [--pub-path PATH]
 *
 * One thread, level-triggered epoll. Per readable event: one read of up to
 * 64 KiB, every whole frame in it handled, then one coalesced write of all
 * the replies. Same behaviour as the other bench servers: echo on every path,
 * except that messages from a connection whose path starts with PATH
 * (default /pub) go to every open connection (the frames of one read are
 * written to each connection in one call). No TLS, no UTF-8 validation, no
 * message reassembly (frames are echoed or broadcast as they come, which is
 * the same thing for the unfragmented messages wsgate-bench sends), no
 * limits: it is a yardstick, not a server to deploy.
 *
 * Prints "listening on ws://HOST:PORT/" when ready; SIGINT/SIGTERM end it with
 * one JSON line of its CPU time and counts on stdout; SIGUSR1 prints it now. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define RBUF (64 * 1024)
#define MAX_HEAD 8192

struct conn {
    int fd;
    int live_pos; /* index in live[] once upgraded, else -1 */
    uint8_t ws, pub, closing, want_out;
    uint8_t *in; /* unparsed bytes: partial request head or partial frame */
    size_t in_len, in_cap;
    uint8_t *out; /* bytes the socket did not take yet */
    size_t out_len, out_off, out_cap;
};

static struct conn **tab; /* by fd */
static size_t tab_size;
static int *live;         /* fds of upgraded connections, for broadcast */
static size_t nlive, live_cap;
static uint8_t rbuf[RBUF];
static uint8_t *bcast; /* frames to broadcast, gathered from one read */
static size_t bcast_len, bcast_cap;
static int ep;
static const char *pub_path = "/pub";
static volatile sig_atomic_t interrupted, want_stats;
static unsigned long long messages_in, echoed, broadcasts, opened, closed_count;

static int grow(uint8_t **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    uint8_t *b = realloc(*buf, c);
    if (!b) return 0;
    *buf = b;
    *cap = c;
    return 1;
}

static void set_out(struct conn *c, int on) {
    if (c->want_out == on) return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.fd = c->fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = (uint8_t)on;
}

static void close_conn(struct conn *c) {
    if (c->live_pos >= 0) {
        int last = live[--nlive];
        live[c->live_pos] = last;
        tab[last]->live_pos = c->live_pos;
        closed_count++;
    }
    tab[c->fd] = NULL;
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

/* Writes what is queued; returns 0 if the connection was closed. */
static int flush_out(struct conn *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
            set_out(c, 1);
            return 1;
        }
        close_conn(c);
        return 0;
    }
    /* Drained: give the buffer back, so an idle connection holds nothing but
     * its struct (one malloc and free per event costs far less than the
     * write itself). */
    c->out_len = c->out_off = 0;
    free(c->out);
    c->out = NULL;
    c->out_cap = 0;
    set_out(c, 0);
    if (c->closing) {
        close_conn(c);
        return 0;
    }
    return 1;
}

static int out_append(struct conn *c, const void *p, size_t n) {
    if (!grow(&c->out, &c->out_cap, c->out_len + n)) return 0;
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    return 1;
}

/* Sends at once when nothing is queued; queues the rest. 0 if closed. */
static int write_now(struct conn *c, const uint8_t *p, size_t n) {
    if (c->out_len == c->out_off) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w == (ssize_t)n) return 1;
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            close_conn(c);
            return 0;
        }
        if (w < 0) w = 0;
        p += w;
        n -= (size_t)w;
    }
    if (!out_append(c, p, n)) {
        close_conn(c);
        return 0;
    }
    set_out(c, 1);
    return 1;
}

static size_t frame_header(uint8_t *h, uint8_t b0, size_t len) {
    h[0] = b0;
    if (len < 126) {
        h[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

static void unmask(uint8_t *p, size_t n, const uint8_t m[4]) {
    uint64_t m8;
    memcpy(&m8, m, 4);
    memcpy((uint8_t *)&m8 + 4, m, 4);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= m8;
        memcpy(p + i, &w, 8);
    }
    for (; i < n; i++) p[i] ^= m[i & 3];
}

/* Handles the whole frames in p[0..n) (unmasked in place); returns how many
 * bytes were consumed, or -1 if the connection must close now. */
static long handle_frames(struct conn *c, uint8_t *p, size_t n) {
    size_t pos = 0;
    while (n - pos >= 2 && !c->closing) {
        uint8_t *f = p + pos;
        uint8_t b0 = f[0], b1 = f[1];
        if (!(b1 & 0x80)) return -1; /* clients must mask */
        size_t h = 2;
        uint64_t len = b1 & 0x7f;
        if (len == 126) {
            if (n - pos < 4) break;
            len = ((uint64_t)f[2] << 8) | f[3];
            h = 4;
        } else if (len == 127) {
            if (n - pos < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = (len << 8) | f[2 + i];
            h = 10;
        }
        if (len > (64u << 20)) return -1;
        if (n - pos < h + 4 + len) break;
        uint8_t *payload = f + h + 4;
        unmask(payload, (size_t)len, f + h);
        int op = b0 & 0x0f;
        uint8_t hdr[10];
        size_t hl;
        switch (op) {
        case 0x0:
        case 0x1:
        case 0x2:
            if (b0 & 0x80) messages_in++;
            hl = frame_header(hdr, (uint8_t)(b0 & 0x8f), (size_t)len);
            if (c->pub) {
                if (!grow(&bcast, &bcast_cap, bcast_len + hl + len)) return -1;
                memcpy(bcast + bcast_len, hdr, hl);
                memcpy(bcast + bcast_len + hl, payload, (size_t)len);
                bcast_len += hl + (size_t)len;
                if (b0 & 0x80) broadcasts++;
            } else {
                if (!out_append(c, hdr, hl) || !out_append(c, payload, (size_t)len)) return -1;
                if (b0 & 0x80) echoed++;
            }
            break;
        case 0x8: /* close: answer with the same code, then close after the flush */
            hl = frame_header(hdr, 0x88, len >= 2 ? 2 : 0);
            if (!out_append(c, hdr, hl) || !out_append(c, payload, len >= 2 ? 2 : 0)) return -1;
            c->closing = 1;
            break;
        case 0x9:
            hl = frame_header(hdr, 0x8a, (size_t)len);
            if (!out_append(c, hdr, hl) || !out_append(c, payload, (size_t)len)) return -1;
            break;
        case 0xa: break;
        default: return -1;
        }
        pos += h + 4 + (size_t)len;
    }
    return (long)pos;
}

static void sha1_base64(const char *key, size_t key_len, char out[32]) {
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char buf[128];
    size_t n = key_len < 64 ? key_len : 64;
    memcpy(buf, key, n);
    memcpy(buf + n, guid, sizeof guid - 1);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(buf, n + sizeof guid - 1, md, &mdlen, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
}

/* The request head is complete in c->in[0..end); answers it. 0 if closed. */
static int upgrade(struct conn *c, size_t end) {
    c->in[end] = '\0';
    const char *req = (const char *)c->in;
    const char *k = strcasestr(req, "\r\nsec-websocket-key:");
    if (strncmp(req, "GET ", 4) != 0 || !k) {
        static const char bad[] = "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        c->closing = 1;
        out_append(c, bad, sizeof bad - 1);
        return flush_out(c);
    }
    k += 20;
    while (*k == ' ' || *k == '\t') k++;
    size_t kl = strcspn(k, " \t\r\n");
    char accept[32];
    sha1_base64(k, kl, accept);
    c->pub = strncmp(req + 4, pub_path, strlen(pub_path)) == 0;
    char resp[160];
    int rl = snprintf(resp, sizeof resp,
                      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                      accept);
    c->ws = 1;
    if (nlive == live_cap) {
        size_t cap = live_cap ? live_cap * 2 : 1024;
        int *l = realloc(live, cap * sizeof *l);
        if (!l) {
            close_conn(c);
            return 0;
        }
        live = l;
        live_cap = cap;
    }
    c->live_pos = (int)nlive;
    live[nlive++] = c->fd;
    opened++;
    return out_append(c, resp, (size_t)rl) ? 1 : (close_conn(c), 0);
}

static void broadcast_pending(void) {
    if (!bcast_len) return;
    /* Backwards: closing one moves the last entry, already served, into its slot. */
    for (size_t i = nlive; i-- > 0;) {
        struct conn *t = tab[live[i]];
        if (!t->closing) write_now(t, bcast, bcast_len);
    }
    bcast_len = 0;
    if (bcast_cap > (1u << 20)) {
        free(bcast);
        bcast = NULL;
        bcast_cap = 0;
    }
}

static void on_readable(struct conn *c) {
    ssize_t n = recv(c->fd, rbuf, RBUF, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        close_conn(c);
        return;
    }
    if (n < 0) return;
    uint8_t *p = rbuf;
    size_t len = (size_t)n;
    if (c->in_len || !c->ws) {
        /* Unparsed bytes from before: continue from them. */
        if (!grow(&c->in, &c->in_cap, c->in_len + len + 1)) {
            close_conn(c);
            return;
        }
        memcpy(c->in + c->in_len, rbuf, len);
        c->in_len += len;
        p = c->in;
        len = c->in_len;
    }
    size_t used = 0;
    if (!c->ws) {
        uint8_t *end = memmem(p, len, "\r\n\r\n", 4);
        if (!end) {
            if (len > MAX_HEAD) close_conn(c);
            return;
        }
        used = (size_t)(end - p) + 4;
        if (!upgrade(c, used - 4)) return;
        if (c->closing) return;
    }
    if (used < len) {
        long m = handle_frames(c, p + used, len - used);
        if (m < 0) {
            close_conn(c);
            bcast_len = 0;
            return;
        }
        used += (size_t)m;
    }
    if (p == c->in) {
        memmove(c->in, c->in + used, len - used);
        c->in_len = len - used;
    } else if (used < len) {
        if (!grow(&c->in, &c->in_cap, len - used + 1)) {
            close_conn(c);
            return;
        }
        memcpy(c->in, p + used, len - used);
        c->in_len = len - used;
    }
    if (!c->in_len && c->in_cap) {
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    }
    int alive = flush_out(c); /* one write for every reply of this read */
    (void)alive;
    broadcast_pending();
}

static void accept_all(int lfd) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                static int warned;
                if (!warned++) fprintf(stderr, "bench-epoll-baseline: out of file descriptors\n");
            }
            return;
        }
        if ((size_t)fd >= tab_size) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->live_pos = -1;
        tab[fd] = c;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
}

static void print_stats(const char *event) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"server\":\"epoll\",\"event\":\"%s\",\"cpu_user_s\":%.6f,\"cpu_sys_s\":%.6f,"
           "\"maxrss_kib\":%ld,\"messages_in\":%llu,\"echoed\":%llu,\"broadcasts\":%llu,"
           "\"opened\":%llu,\"closed\":%llu}\n",
           event, (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6, ru.ru_maxrss,
           messages_in, echoed, broadcasts, opened, closed_count);
    fflush(stdout);
}

static void on_signal(int sig) {
    if (sig == SIGUSR1)
        want_stats = 1;
    else
        interrupted = 1;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: bench-epoll-baseline [--host ADDR] [--port N] [--pub-path PATH]\n");
            return 0;
        } else if (!strcmp(argv[i], "--host") && i + 1 < argc) {
            host = argv[++i];
        } else if (!strcmp(argv[i], "--port") && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--pub-path") && i + 1 < argc) {
            pub_path = argv[++i];
        } else {
            fprintf(stderr, "bench-epoll-baseline: unknown or incomplete argument '%s'\n", argv[i]);
            return 2;
        }
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    tab_size = rl.rlim_cur == RLIM_INFINITY ? 1048576 : rl.rlim_cur;
    tab = calloc(tab_size, sizeof *tab);

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        sl = sizeof *sin;
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sl = sizeof *s6;
    } else {
        fprintf(stderr, "bench-epoll-baseline: --host must be an IP address\n");
        return 2;
    }
    int lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&ss, sl) != 0 || listen(lfd, 4096) != 0) {
        perror("bench-epoll-baseline: listen");
        return 1;
    }
    getsockname(lfd, (struct sockaddr *)&ss, &sl);
    int bound = ntohs(ss.ss_family == AF_INET ? sin->sin_port : s6->sin6_port);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    int v6 = strchr(host, ':') != NULL;
    printf("listening on ws://%s%s%s:%d/\n", v6 ? "[" : "", host, v6 ? "]" : "", bound);
    fflush(stdout);

    struct epoll_event evs[512];
    while (!interrupted) {
        int n = epoll_wait(ep, evs, 512, -1);
        if (want_stats) {
            want_stats = 0;
            print_stats("stats");
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                accept_all(lfd);
                continue;
            }
            struct conn *c = tab[fd];
            if (!c) continue;
            if (evs[i].events & EPOLLOUT) {
                if (!flush_out(c)) continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
        }
    }
    for (size_t fd = 0; fd < tab_size; fd++)
        if (tab[fd]) close_conn(tab[fd]);
    free(tab);
    free(live);
    free(bcast);
    close(lfd);
    close(ep);
    print_stats("exit");
    return 0;
}
