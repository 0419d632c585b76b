/* wsgate-echo: echoes every message back to its sender.
 *
 *   wsgate-echo [--host ADDR] [--port N] [--set KEY=VALUE]... [--list-options] [--help]
 *
 * Prints exactly one line "listening on ws://HOST:PORT/PATH" (wss:// with
 * tls.cert_file) on stdout when ready. SIGINT or SIGTERM stops it gracefully
 * (exit code 0); SIGHUP reloads the TLS certificate and key. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wsgate/wsgate.h>

static void on_message(wsg_server *server, wsg_conn_id conn, wsg_msg_type type,
                       const void *data, size_t len, void *user) {
    (void)user;
    /* WSG_ECLOSED or WSG_ENOTFOUND only mean the client is going away. */
    wsg_conn_send(server, conn, type, data, len);
}

/* Every option: name, type, default, range (int and enum) and doc, in the
 * same layout as `python -m wsgate --list-options`. */
static void list_options(FILE *out) {
    for (size_t i = 0; i < wsg_option_count(); i++) {
        const char *name, *type, *def, *range, *doc;
        wsg_option_describe(i, WSG_OPTION_NAME, &name);
        wsg_option_describe(i, WSG_OPTION_TYPE, &type);
        wsg_option_describe(i, WSG_OPTION_DEFAULT, &def);
        wsg_option_describe(i, WSG_OPTION_RANGE, &range);
        wsg_option_describe(i, WSG_OPTION_DOC, &doc);
        fprintf(out, "  %-32s %-6s default \"%s\"%s%s\n      %s\n", name, type, def,
                *range ? ", range " : "", range, doc);
    }
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: wsgate-echo [--host ADDR] [--port N] [--set KEY=VALUE]... [--list-options]\n"
            "                   [--help]\n"
            "\n"
            "Echoes every WebSocket message back to its sender.\n"
            "  --host ADDR       listen address (same as --set listen.host=ADDR)\n"
            "  --port N          listen port, 0 = ephemeral (same as --set listen.port=N)\n"
            "  --set KEY=VALUE   set any option (repeatable)\n"
            "  --list-options    list every option (name, type, default, range, doc) and exit\n"
            "  --help            this text\n"
            "\n"
            "Options:\n");
    list_options(out);
}

static int set_or_die(wsg_config *cfg, const char *assignment) {
    if (wsg_config_set_from_string(cfg, assignment) != WSG_OK) {
        fprintf(stderr, "wsgate-echo: %s\n", wsg_last_error());
        return 0;
    }
    return 1;
}

int main(int argc, char **argv) {
    wsg_config *cfg;
    if (wsg_config_new(&cfg) != WSG_OK) return 1;
    char buf[512];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            wsg_config_free(cfg);
            return 0;
        }
        if (!strcmp(a, "--list-options")) {
            list_options(stdout);
            wsg_config_free(cfg);
            return 0;
        }
        if (i + 1 >= argc || (strcmp(a, "--host") && strcmp(a, "--port") && strcmp(a, "--set"))) {
            fprintf(stderr, "wsgate-echo: unknown or incomplete argument '%s' (try --help)\n", a);
            wsg_config_free(cfg);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--host"))
            snprintf(buf, sizeof buf, "listen.host=%s", v);
        else if (!strcmp(a, "--port"))
            snprintf(buf, sizeof buf, "listen.port=%s", v);
        else
            snprintf(buf, sizeof buf, "%s", v);
        if (!set_or_die(cfg, buf)) {
            wsg_config_free(cfg);
            return 2;
        }
    }

    wsg_server *server;
    if (wsg_server_new(&server, cfg) != WSG_OK) {
        fprintf(stderr, "wsgate-echo: %s\n", wsg_last_error());
        wsg_config_free(cfg);
        return 1;
    }
    wsg_server_on_message(server, on_message, NULL, NULL);

    /* Block the signals in every thread (the service thread inherits the
       mask) and take them synchronously here: a signal handler may not call
       wsg_server_stop, and a signal that arrives early is simply waited for. */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);

    if (wsg_server_listen(server) != WSG_OK) {
        fprintf(stderr, "wsgate-echo: %s\n", wsg_last_error());
        wsg_server_free(server);
        wsg_config_free(cfg);
        return 1;
    }
    const char *host, *path, *cert;
    int port = 0;
    wsg_config_get_string(cfg, "tls.cert_file", &cert);
    wsg_config_get_string(cfg, "listen.host", &host);
    wsg_config_get_string(cfg, "server.path", &path);
    wsg_server_port(server, &port);
    if (!*host) host = "0.0.0.0";
    int v6 = strchr(host, ':') != NULL;
    wsg_status st = wsg_server_start(server);
    if (st != WSG_OK) {
        fprintf(stderr, "wsgate-echo: %s\n", wsg_last_error());
        wsg_server_free(server);
        wsg_config_free(cfg);
        return 1;
    }
    printf("listening on %s://%s%s%s:%d%s\n", *cert ? "wss" : "ws", v6 ? "[" : "", host,
           v6 ? "]" : "", port, path);
    fflush(stdout);

    for (;;) {
        int sig;
        if (sigwait(&signals, &sig) != 0) continue;
        if (sig != SIGHUP) break;
        if (wsg_server_reload_tls(server) != WSG_OK)
            fprintf(stderr, "wsgate-echo: TLS reload: %s\n", wsg_last_error());
    }
    st = wsg_server_stop(server);
    wsg_server_free(server);
    wsg_config_free(cfg);
    return st == WSG_OK ? 0 : 1;
}
