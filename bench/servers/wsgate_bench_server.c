/* wsgate-bench-server: the wsgate side of the benchmarks, through the C ABI only.
 *
 *   wsgate-bench-server [--host ADDR] [--port N] [--pub-path PATH] [--topics]
 *                       [--set KEY=VALUE]...
 *   wsgate-bench-server --list-options | --describe-option NAME
 *
 * Two behaviours, chosen per connection by its request path, so one server
 * serves every benchmark case (the baselines in bench/baseline/ do the same):
 *  - echo: a message on any other path goes back to its sender;
 *  - broadcast: a message from a connection whose path starts with PATH
 *    (default /pub) goes to every open connection (wsg_server_broadcast:
 *    framed once, shared by every queue).
 * With --topics, a connection whose query names a topic (?topic=NAME) is
 * subscribed to it when it opens, and a publisher's message whose header is
 * a topic message (wsgate-bench fanout --topics: magic "WSGT", the topic's
 * number at bytes 24..27 in the machine's byte order, like the header's
 * other fields) goes to the subscribers of the topic
 * named by that number in decimal (wsg_server_publish); any other publisher
 * message is still broadcast. The lookup at open is behind the flag so that
 * handshake benchmarks measure the library rather than it.
 *
 * Prints "listening on ws://HOST:PORT/" on stdout when ready. SIGINT/SIGTERM
 * stop it gracefully; it then prints one JSON line with its own CPU time
 * (getrusage), peak memory and message counts. SIGUSR1 prints the same line
 * without stopping. log.level defaults to warn here (per-connection open and
 * close events would otherwise dominate handshake benchmarks); --set
 * log.level=info restores the library default. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <wsgate/wsgate.h>

/* Per-connection role, kept in the connection's user pointer. */
#define ROLE_UNKNOWN ((void *)0)
#define ROLE_ECHO ((void *)1)
#define ROLE_PUB ((void *)2)

struct counters {
    /* Written on the service thread, read by the signal thread. */
    atomic_ullong messages_in, echoed, broadcasts, publishes, subscribed, opened, closed;
};

struct app {
    const char *pub_path;
    size_t pub_len;
    int topics; /* --topics: subscribe at open, publish topic messages */
    struct counters n;
};

/* Payload header of wsgate-bench's fanout (bench/tool/engine.cpp): magic,
 * publisher, sequence number, send time; a topic message adds its topic. */
#define TOPIC_MAGIC "WSGT"
#define TOPIC_AT 24
#define TOPIC_HEADER 28

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The value of query parameter `topic`, percent-decoded into out (at most
 * WSG_TOPIC_MAX bytes). Returns 0 when there is none or it does not fit. */
static int topic_of_query(const char *q, char *out, size_t cap) {
    while (*q) {
        const char *end = strchr(q, '&');
        if (!end) end = q + strlen(q);
        if (strncmp(q, "topic=", 6) == 0) {
            size_t n = 0;
            for (const char *p = q + 6; p < end; p++) {
                char c = *p;
                if (c == '%' && end - p >= 3 && hex_digit(p[1]) >= 0 && hex_digit(p[2]) >= 0) {
                    c = (char)(hex_digit(p[1]) * 16 + hex_digit(p[2]));
                    p += 2;
                } else if (c == '+') {
                    c = ' ';
                }
                if (n + 1 >= cap) return 0;
                out[n++] = c;
            }
            out[n] = 0;
            return n > 0;
        }
        q = *end ? end + 1 : end;
    }
    return 0;
}

static void on_open(wsg_server *s, wsg_conn_id id, void *user) {
    struct app *a = user;
    atomic_fetch_add_explicit(&a->n.opened, 1, memory_order_relaxed);
    if (!a->topics) return;
    wsg_conn_info *info = NULL;
    const char *query = "";
    char topic[WSG_TOPIC_MAX + 1];
    if (wsg_conn_info_get(s, id, &info) == WSG_OK &&
        wsg_conn_info_string(info, WSG_INFO_QUERY, &query) == WSG_OK &&
        topic_of_query(query, topic, sizeof topic) && wsg_conn_subscribe(s, id, topic) == WSG_OK)
        atomic_fetch_add_explicit(&a->n.subscribed, 1, memory_order_relaxed);
    wsg_conn_info_free(info);
}

/* Decimal digits of v into out (at least 11 bytes); returns out. */
static const char *topic_name(uint32_t v, char *out) {
    char tmp[11];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    out[n] = 0;
    return out;
}

static void on_close(wsg_server *s, wsg_conn_id id, int code, const char *reason,
                     size_t reason_len, wsg_close_cause cause, void *user) {
    (void)s;
    (void)id;
    (void)code;
    (void)reason;
    (void)reason_len;
    (void)cause;
    struct app *a = user;
    atomic_fetch_add_explicit(&a->n.closed, 1, memory_order_relaxed);
}

/* The role is looked up on a connection's first message, not at open, so
 * handshake benchmarks measure the library rather than this lookup. */
static void *role_of(wsg_server *s, wsg_conn_id id, struct app *a) {
    void *role = ROLE_UNKNOWN;
    wsg_conn_get_user(s, id, &role);
    if (role != ROLE_UNKNOWN) return role;
    role = ROLE_ECHO;
    wsg_conn_info *info = NULL;
    const char *path = "";
    if (wsg_conn_info_get(s, id, &info) == WSG_OK &&
        wsg_conn_info_string(info, WSG_INFO_PATH, &path) == WSG_OK &&
        strncmp(path, a->pub_path, a->pub_len) == 0)
        role = ROLE_PUB;
    wsg_conn_info_free(info);
    wsg_conn_set_user(s, id, role);
    return role;
}

static void on_message(wsg_server *s, wsg_conn_id id, wsg_msg_type type, const void *data,
                       size_t len, void *user) {
    struct app *a = user;
    atomic_fetch_add_explicit(&a->n.messages_in, 1, memory_order_relaxed);
    if (role_of(s, id, a) == ROLE_PUB) {
        if (a->topics && len >= TOPIC_HEADER && memcmp(data, TOPIC_MAGIC, 4) == 0) {
            uint32_t t;
            char name[11];
            memcpy(&t, (const char *)data + TOPIC_AT, 4);
            if (wsg_server_publish(s, topic_name(t, name), type, data, len) == WSG_OK)
                atomic_fetch_add_explicit(&a->n.publishes, 1, memory_order_relaxed);
        } else if (wsg_server_broadcast(s, type, data, len) == WSG_OK) {
            atomic_fetch_add_explicit(&a->n.broadcasts, 1, memory_order_relaxed);
        }
    } else if (wsg_conn_send(s, id, type, data, len) == WSG_OK) {
        atomic_fetch_add_explicit(&a->n.echoed, 1, memory_order_relaxed);
    }
}

static void print_stats(struct app *a, const char *event) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"server\":\"wsgate\",\"event\":\"%s\",\"cpu_user_s\":%.6f,\"cpu_sys_s\":%.6f,"
           "\"maxrss_kib\":%ld,\"messages_in\":%llu,\"echoed\":%llu,\"broadcasts\":%llu,"
           "\"publishes\":%llu,\"subscribed\":%llu,\"opened\":%llu,\"closed\":%llu}\n",
           event, (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6, ru.ru_maxrss,
           (unsigned long long)atomic_load(&a->n.messages_in),
           (unsigned long long)atomic_load(&a->n.echoed),
           (unsigned long long)atomic_load(&a->n.broadcasts),
           (unsigned long long)atomic_load(&a->n.publishes),
           (unsigned long long)atomic_load(&a->n.subscribed),
           (unsigned long long)atomic_load(&a->n.opened),
           (unsigned long long)atomic_load(&a->n.closed));
    fflush(stdout);
}

struct stopper {
    wsg_server *server;
    struct app *app;
    sigset_t signals;
};

/* Signals are taken synchronously on this thread, which may call
 * wsg_server_stop (a signal handler may not). */
static void *wait_for_signal(void *arg) {
    struct stopper *s = arg;
    for (;;) {
        int sig = 0;
        if (sigwait(&s->signals, &sig) != 0) continue;
        if (sig == SIGUSR1) {
            print_stats(s->app, "stats");
            continue;
        }
        wsg_server_stop(s->server);
        return NULL;
    }
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: wsgate-bench-server [--host ADDR] [--port N] [--pub-path PATH] [--topics]\n"
            "                           [--set KEY=VALUE]... [--help]\n"
            "\n"
            "Echoes messages back to their sender, except on connections whose path starts\n"
            "with PATH (default /pub), whose messages are broadcast to every connection.\n"
            "SIGINT/SIGTERM stop it and print its CPU time as JSON; SIGUSR1 prints it now.\n"
            "  --host ADDR       listen address (listen.host)\n"
            "  --port N          listen port, 0 = ephemeral (listen.port)\n"
            "  --pub-path PATH   path prefix of publishers (default /pub)\n"
            "  --topics          subscribe a connection to the topic in its query\n"
            "                    (?topic=NAME) when it opens; publish a publisher's topic\n"
            "                    messages (wsgate-bench fanout --topics) to their topic\n"
            "  --set KEY=VALUE   any wsgate option (see wsgate-echo --help); log.level\n"
            "                    defaults to warn here\n"
            "  --list-options    print the name of every option this library knows\n"
            "  --describe-option NAME\n"
            "                    print that option's name, type, default, range (\"a|b|c\"\n"
            "                    for a choice) and doc as one JSON object; exit 2 if unknown\n");
}

static void print_json_string(const char *v) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

/* For scripts: what values an option takes (the matrix runs one case per
 * value of limits.queue_policy, whichever this library has). */
static int describe_option(const char *name) {
    size_t k;
    if (wsg_option_find(name, &k) != WSG_OK) {
        fprintf(stderr, "wsgate-bench-server: no option '%s' in this library\n", name);
        return 2;
    }
    static const struct {
        const char *key;
        wsg_option_field field;
    } cols[] = {{"name", WSG_OPTION_NAME},
                {"type", WSG_OPTION_TYPE},
                {"default", WSG_OPTION_DEFAULT},
                {"range", WSG_OPTION_RANGE},
                {"doc", WSG_OPTION_DOC}};
    putchar('{');
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
        const char *v = "";
        if (wsg_option_describe(k, cols[c].field, &v) != WSG_OK) v = "";
        printf("%s\"%s\":", c ? "," : "", cols[c].key);
        print_json_string(v);
    }
    printf("}\n");
    return 0;
}

int main(int argc, char **argv) {
    static struct app app;
    app.pub_path = "/pub";
    wsg_config *cfg;
    if (wsg_config_new(&cfg) != WSG_OK) return 1;
    wsg_config_set_string(cfg, "log.level", "warn");
    char buf[1024];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            wsg_config_free(cfg);
            return 0;
        }
        if (!strcmp(a, "--list-options")) {
            /* For scripts: which options (and so which features) this library has. */
            for (size_t k = 0; k < wsg_option_count(); k++) {
                const char *name;
                if (wsg_option_describe(k, WSG_OPTION_NAME, &name) == WSG_OK) printf("%s\n", name);
            }
            wsg_config_free(cfg);
            return 0;
        }
        if (!strcmp(a, "--topics")) {
            app.topics = 1;
            continue;
        }
        if (!strcmp(a, "--describe-option")) {
            int rc = i + 1 < argc ? describe_option(argv[i + 1]) : 2;
            if (i + 1 >= argc) fprintf(stderr, "wsgate-bench-server: --describe-option needs a NAME\n");
            wsg_config_free(cfg);
            return rc;
        }
        if (i + 1 >= argc || (strcmp(a, "--host") && strcmp(a, "--port") && strcmp(a, "--set") &&
                              strcmp(a, "--pub-path"))) {
            fprintf(stderr, "wsgate-bench-server: unknown or incomplete argument '%s'\n", a);
            wsg_config_free(cfg);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--pub-path")) {
            app.pub_path = v;
            continue;
        }
        if (!strcmp(a, "--host"))
            snprintf(buf, sizeof buf, "listen.host=%s", v);
        else if (!strcmp(a, "--port"))
            snprintf(buf, sizeof buf, "listen.port=%s", v);
        else
            snprintf(buf, sizeof buf, "%s", v);
        if (wsg_config_set_from_string(cfg, buf) != WSG_OK) {
            fprintf(stderr, "wsgate-bench-server: %s\n", wsg_last_error());
            wsg_config_free(cfg);
            return 2;
        }
    }
    app.pub_len = strlen(app.pub_path);

    wsg_server *server;
    if (wsg_server_new(&server, cfg) != WSG_OK) {
        fprintf(stderr, "wsgate-bench-server: %s\n", wsg_last_error());
        wsg_config_free(cfg);
        return 1;
    }
    wsg_server_on_open(server, on_open, &app, NULL);
    wsg_server_on_message(server, on_message, &app, NULL);
    wsg_server_on_close(server, on_close, &app, NULL);

    struct stopper stopper;
    stopper.server = server;
    stopper.app = &app;
    sigemptyset(&stopper.signals);
    sigaddset(&stopper.signals, SIGINT);
    sigaddset(&stopper.signals, SIGTERM);
    sigaddset(&stopper.signals, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &stopper.signals, NULL);

    if (wsg_server_listen(server) != WSG_OK) {
        fprintf(stderr, "wsgate-bench-server: %s\n", wsg_last_error());
        wsg_server_free(server);
        wsg_config_free(cfg);
        return 1;
    }
    const char *host, *cert = "";
    int port = 0;
    wsg_config_get_string(cfg, "listen.host", &host);
    /* Only libraries with TLS know the option: then a certificate means wss. */
    if (wsg_config_get_string(cfg, "tls.cert_file", &cert) != WSG_OK) cert = "";
    wsg_server_port(server, &port);
    if (!*host) host = "0.0.0.0";
    int v6 = strchr(host, ':') != NULL;
    printf("listening on %s://%s%s%s:%d/\n", *cert ? "wss" : "ws", v6 ? "[" : "", host,
           v6 ? "]" : "", port);
    fflush(stdout);

    pthread_t tid;
    pthread_create(&tid, NULL, wait_for_signal, &stopper);
    wsg_status st = wsg_server_run(server);
    if (st != WSG_OK) {
        fprintf(stderr, "wsgate-bench-server: %s\n", wsg_last_error());
        pthread_kill(tid, SIGTERM); /* wakes the stopper's sigwait */
    }
    pthread_join(tid, NULL);
    print_stats(&app, "exit");
    wsg_server_free(server);
    wsg_config_free(cfg);
    return st == WSG_OK ? 0 : 1;
}
