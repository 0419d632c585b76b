/* bench-lws-baseline: plain libwebsockets, written the way the lws minimal
 * examples write a server (minimal-ws-server-echo, minimal-ws-server-ring):
 * one protocol callback, per-session data, messages copied into a queue on
 * LWS_CALLBACK_RECEIVE and written one per LWS_CALLBACK_SERVER_WRITEABLE with
 * lws_write(), asking for the next writable event while more is queued.
 *
 *   bench-lws-baseline [--host ADDR] [--port N] [--rx-buffer BYTES]
 *                      [--pub-path PATH] [--tls CERT KEY]
 *
 * Same behaviour as bench/servers/wsgate_bench_server.c: echo on every path,
 * except that a message from a connection whose path starts with PATH
 * (default /pub) goes to every open connection. A broadcast message is
 * copied once and shared by reference (as the ring example shares its ring
 * entries), without the ring's O(subscribers) tail bookkeeping.
 *
 * Not the lws examples' choice: rx_buffer_size (--rx-buffer, default 2048;
 * in the ws role each connection has a receive buffer of this size) and
 * permessage-deflate off (wsgate's default too).
 * With --tls the listener speaks wss (ALPN http/1.1).
 *
 * Prints "listening on ws://HOST:PORT/" when ready; SIGINT/SIGTERM end it with
 * one JSON line of its CPU time and counts on stdout; SIGUSR1 prints it now. */
#define _GNU_SOURCE
#include <libwebsockets.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* A message, shared by every queue it sits in. */
struct msg {
    unsigned refs;
    size_t len;
    int binary;
    unsigned char buf[]; /* LWS_PRE + len */
};

struct qnode {
    struct qnode *next;
    struct msg *m;
};

struct pss {
    struct lws *wsi;
    struct pss *prev, *next; /* every open connection, for broadcast */
    struct qnode *head, *tail;
    unsigned qlen;
    int publisher;
    int flow_off;
    unsigned char *rx; /* a fragmented or chunked message being reassembled */
    size_t rx_len, rx_cap;
};

#define ECHO_QUEUE_HIGH 256  /* stop reading a client with this many replies queued */
#define ECHO_QUEUE_LOW 32    /* and resume below this */
#define BCAST_QUEUE_MAX 65536 /* a subscriber this far behind misses messages */

static struct {
    struct pss *all;
    const char *pub_path;
    size_t pub_len;
    unsigned long long messages_in, echoed, broadcasts, dropped, opened, closed;
} g = {NULL, "/pub", 4, 0, 0, 0, 0, 0, 0};

static volatile sig_atomic_t interrupted, want_stats;
static struct lws_context *context;

static void msg_unref(struct msg *m) {
    if (--m->refs == 0) free(m);
}

static void enqueue(struct pss *p, struct msg *m) {
    struct qnode *n = malloc(sizeof *n);
    if (!n) return;
    n->next = NULL;
    n->m = m;
    m->refs++;
    if (p->tail)
        p->tail->next = n;
    else
        p->head = n;
    p->tail = n;
    p->qlen++;
    lws_callback_on_writable(p->wsi);
}

static void on_whole_message(struct lws *wsi, struct pss *pss, const void *data, size_t len,
                             int binary) {
    g.messages_in++;
    struct msg *m = malloc(sizeof *m + LWS_PRE + len);
    if (!m) return;
    m->refs = 1;
    m->len = len;
    m->binary = binary;
    if (len) memcpy(m->buf + LWS_PRE, data, len);
    if (pss->publisher) {
        g.broadcasts++;
        for (struct pss *p = g.all; p; p = p->next) {
            if (p->qlen >= BCAST_QUEUE_MAX) {
                g.dropped++;
                continue;
            }
            enqueue(p, m);
        }
    } else {
        g.echoed++;
        enqueue(pss, m);
        if (pss->qlen >= ECHO_QUEUE_HIGH && !pss->flow_off) {
            pss->flow_off = 1;
            lws_rx_flow_control(wsi, 0);
        }
    }
    msg_unref(m);
}

static int callback_bench(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len) {
    struct pss *pss = user;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED: {
        char path[256];
        pss->wsi = wsi;
        pss->publisher = lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI) > 0 &&
                         strncmp(path, g.pub_path, g.pub_len) == 0;
        pss->next = g.all;
        if (g.all) g.all->prev = pss;
        g.all = pss;
        g.opened++;
        break;
    }
    case LWS_CALLBACK_RECEIVE: {
        int final = lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);
        int binary = lws_frame_is_binary(wsi);
        if (final && !pss->rx_len) {
            on_whole_message(wsi, pss, in, len, binary);
            break;
        }
        if (pss->rx_len + len > pss->rx_cap) {
            size_t cap = (pss->rx_len + len) * 2;
            unsigned char *b = realloc(pss->rx, cap);
            if (!b) return -1;
            pss->rx = b;
            pss->rx_cap = cap;
        }
        memcpy(pss->rx + pss->rx_len, in, len);
        pss->rx_len += len;
        if (final) {
            on_whole_message(wsi, pss, pss->rx, pss->rx_len, binary);
            pss->rx_len = 0;
        }
        break;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE: {
        struct qnode *n = pss->head;
        if (!n) break;
        pss->head = n->next;
        if (!pss->head) pss->tail = NULL;
        pss->qlen--;
        struct msg *m = n->m;
        free(n);
        int want = (int)m->len;
        int w = lws_write(wsi, m->buf + LWS_PRE, m->len,
                          m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
        msg_unref(m);
        if (w < want) return -1;
        if (pss->head) lws_callback_on_writable(wsi);
        if (pss->flow_off && pss->qlen < ECHO_QUEUE_LOW) {
            pss->flow_off = 0;
            lws_rx_flow_control(wsi, 1);
        }
        break;
    }
    case LWS_CALLBACK_CLOSED:
        if (!pss->wsi) break;
        if (pss->prev)
            pss->prev->next = pss->next;
        else
            g.all = pss->next;
        if (pss->next) pss->next->prev = pss->prev;
        while (pss->head) {
            struct qnode *n = pss->head;
            pss->head = n->next;
            msg_unref(n->m);
            free(n);
        }
        free(pss->rx);
        pss->wsi = NULL;
        g.closed++;
        break;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        break;
    default:
        break;
    }
    return 0;
}

static void print_stats(const char *event) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"server\":\"lws\",\"event\":\"%s\",\"cpu_user_s\":%.6f,\"cpu_sys_s\":%.6f,"
           "\"maxrss_kib\":%ld,\"messages_in\":%llu,\"echoed\":%llu,\"broadcasts\":%llu,"
           "\"dropped\":%llu,\"opened\":%llu,\"closed\":%llu}\n",
           event, (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6, ru.ru_maxrss,
           g.messages_in, g.echoed, g.broadcasts, g.dropped, g.opened, g.closed);
    fflush(stdout);
}

static void on_signal(int sig) {
    if (sig == SIGUSR1)
        want_stats = 1;
    else
        interrupted = 1;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *cert = NULL, *key = NULL;
    int port = 0, rx_buffer = 2048;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: bench-lws-baseline [--host ADDR] [--port N] [--rx-buffer BYTES] "
                   "[--pub-path PATH] [--tls CERT KEY]\n");
            return 0;
        }
        if (!strcmp(a, "--tls") && i + 2 < argc) {
            cert = argv[++i];
            key = argv[++i];
        } else if (!strcmp(a, "--host") && i + 1 < argc) {
            host = argv[++i];
        } else if (!strcmp(a, "--port") && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (!strcmp(a, "--rx-buffer") && i + 1 < argc) {
            rx_buffer = atoi(argv[++i]);
        } else if (!strcmp(a, "--pub-path") && i + 1 < argc) {
            g.pub_path = argv[++i];
            g.pub_len = strlen(g.pub_path);
        } else {
            fprintf(stderr, "bench-lws-baseline: unknown or incomplete argument '%s'\n", a);
            return 2;
        }
    }

    /* lws sizes its fd table from RLIMIT_NOFILE at context creation. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    lws_set_log_level(LLL_ERR, NULL);

    struct lws_protocols protocols[] = {
        {"bench", callback_bench, sizeof(struct pss), (size_t)rx_buffer, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0}};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = port;
    info.iface = host;
    info.protocols = protocols;
    info.gid = -1;
    info.uid = -1;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_SKIP_SERVER_CANONICAL_NAME;
    if (!strchr(host, ':')) info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    if (cert) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cert;
        info.ssl_private_key_filepath = key;
        info.alpn = "http/1.1";
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: the signal ends lws' poll() wait */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);

    context = lws_create_context(&info);
    if (!context) {
        fprintf(stderr, "bench-lws-baseline: lws_create_context failed\n");
        return 1;
    }
    struct lws_vhost *vh = lws_get_vhost_by_name(context, "default");
    int bound = vh ? lws_get_vhost_listen_port(vh) : port;
    int v6 = strchr(host, ':') != NULL;
    printf("listening on %s://%s%s%s:%d/\n", cert ? "wss" : "ws", v6 ? "[" : "", host,
           v6 ? "]" : "", bound);
    fflush(stdout);

    int n = 0;
    while (n >= 0 && !interrupted) {
        n = lws_service(context, 0);
        if (want_stats) {
            want_stats = 0;
            print_stats("stats");
        }
    }
    lws_context_destroy(context);
    print_stats("exit");
    return 0;
}
