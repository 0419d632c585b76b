/* wsgate-chat: a chat server people open in a browser.
 *
 *   wsgate-chat [--host ADDR] [--port N] [--set KEY=VALUE]... [--help]
 *
 * Serves its page (index.html, embedded at build time) at / and the chat's
 * WebSocket at /chat?room=NAME&name=USER. Rooms are topics ("room:NAME");
 * /who lists a room, /msg USER text reaches every connection of USER. With
 * --set auth.mode=jwt (and the auth.jwt.* keys) the user id comes from the
 * token (the page passes ?token=... as access_token); otherwise from ?name=
 * or "guest-N". When ready it prints "open http://HOST:PORT/ in a browser"
 * on stdout; SIGINT or SIGTERM stops it gracefully (clients get close 1001,
 * which the page shows), exit code 0. Rooms keep their last 200 messages
 * (cluster.history_*: in memory, or in Redis with cluster.redis), so a page
 * that reconnects with ?from=POS gets the messages it missed. */
#define _POSIX_C_SOURCE 200809L /* sigaction */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <wsgate/wsgate.h>

#include "chat.h"

/* Generated from index.html by embed.cmake. */
extern const unsigned char chat_page[];
extern const size_t chat_page_len;

static wsg_server *volatile running; /* read by the signal handler */

static void on_signal(int sig) {
    (void)sig;
    wsg_server_request_stop(running); /* the one async-signal-safe call; NULL is ignored */
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: wsgate-chat [--host ADDR] [--port N] [--set KEY=VALUE]... [--help]\n"
            "\n"
            "A chat server: open the printed URL in a browser. Rooms: /?room=NAME; names:\n"
            "/?name=USER (or a JWT with --set auth.mode=jwt and the auth.jwt.* options).\n"
            "Rooms keep their last 200 messages for a page that reconnects (cluster.history_*).\n"
            "  --host ADDR       listen address (same as --set listen.host=ADDR)\n"
            "  --port N          listen port, 0 = ephemeral (same as --set listen.port=N)\n"
            "  --set KEY=VALUE   set any wsgate option (repeatable; wsgate-echo --list-options\n"
            "                    lists them)\n"
            "  --help            this text\n");
}

/* Defaults of the chat, before the command line: the WebSocket lives at
 * /chat, chat messages are small, a browser can only pass a token in the
 * query, and rooms keep a history a page that reconnects resumes from (200:
 * minutes of a busy room). auth.mode none becomes callback: the chat's
 * authenticator names users (?name= or guest-N) so that /msg can reach them
 * by name. */
static const char *const defaults[] = {
    "server.path=/chat",
    "limits.max_message_bytes=8192",
    "auth.token_sources=query",
    "cluster.history_topics=room:*",
    "cluster.history_size=200",
};

static int set(wsg_config *cfg, const char *assignment) {
    if (wsg_config_set_from_string(cfg, assignment) == WSG_OK) return 1;
    fprintf(stderr, "wsgate-chat: %s\n", wsg_last_error());
    return 0;
}

static int configure(wsg_config *cfg, int argc, char **argv) {
    char buf[1024];
    for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++)
        if (!set(cfg, defaults[i])) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return -1;
        }
        if (i + 1 >= argc || (strcmp(a, "--host") && strcmp(a, "--port") && strcmp(a, "--set"))) {
            fprintf(stderr, "wsgate-chat: unknown or incomplete argument '%s' (try --help)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--host"))
            snprintf(buf, sizeof buf, "listen.host=%s", v);
        else if (!strcmp(a, "--port"))
            snprintf(buf, sizeof buf, "listen.port=%s", v);
        else
            snprintf(buf, sizeof buf, "%s", v);
        if (!set(cfg, buf)) return 2;
    }
    const char *path = "", *mode = "";
    wsg_config_get_string(cfg, "server.path", &path);
    if (strcmp(path, "/chat") != 0) {
        fprintf(stderr, "wsgate-chat: the page connects to /chat: server.path cannot be '%s'\n", path);
        return 2;
    }
    wsg_config_get_string(cfg, "auth.mode", &mode);
    if (!strcmp(mode, "none") && !set(cfg, "auth.mode=callback")) return 1;
    return 0;
}

int main(int argc, char **argv) {
    wsg_config *cfg;
    if (wsg_config_new(&cfg) != WSG_OK) return 1;
    int rc = configure(cfg, argc, argv);
    if (rc) {
        wsg_config_free(cfg);
        return rc < 0 ? 0 : rc;
    }
    wsg_server *server;
    if (wsg_server_new(&server, cfg) != WSG_OK) {
        fprintf(stderr, "wsgate-chat: %s\n", wsg_last_error());
        wsg_config_free(cfg);
        return 1;
    }
    if (chat_install(server) != WSG_OK ||
        wsg_server_add_page(server, "/", "text/html; charset=utf-8", chat_page, chat_page_len) != WSG_OK ||
        wsg_server_listen(server) != WSG_OK) {
        fprintf(stderr, "wsgate-chat: %s\n", wsg_last_error());
        wsg_server_free(server);
        wsg_config_free(cfg);
        return 1;
    }

    running = server;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* The socket listens already: a browser that connects now waits in the
       backlog until wsg_server_run serves it. */
    const char *host = "", *cert = "";
    int port = 0;
    wsg_config_get_string(cfg, "listen.host", &host);
    wsg_config_get_string(cfg, "tls.cert_file", &cert);
    wsg_server_port(server, &port);
    if (!*host || !strcmp(host, "0.0.0.0") || !strcmp(host, "::")) host = "localhost";
    int v6 = strchr(host, ':') != NULL;
    printf("open %s://%s%s%s:%d/ in a browser\n", *cert ? "https" : "http", v6 ? "[" : "", host, v6 ? "]" : "",
           port);
    fflush(stdout);

    wsg_status st = wsg_server_run(server);
    if (st != WSG_OK) fprintf(stderr, "wsgate-chat: %s\n", wsg_last_error());
    running = NULL; /* a late signal now does nothing */
    wsg_server_free(server);
    wsg_config_free(cfg);
    return st == WSG_OK ? 0 : 1;
}
