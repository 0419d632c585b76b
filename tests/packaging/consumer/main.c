/* A consumer of the installed wsgate, built by tests/packaging/consumer_test.sh
 * through pkg-config and through find_package(wsgate). It only uses the
 * installed header and library, as an application would:
 *
 *   - header and library versions agree,
 *   - a server on 127.0.0.1, port 0, echoes through an on_message callback,
 *   - a hand-written client (raw TCP socket) upgrades, sends one masked text
 *     frame "ping", reads the echo back, closes with 1000,
 *   - the server stops and frees cleanly.
 *
 * Prints "consumer ok" and exits 0 only if every step worked. Every socket
 * read and write is bounded by a timeout, so a broken library fails rather
 * than hangs. */
#define _POSIX_C_SOURCE 200112L
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <wsgate/wsgate.h>

#define IO_TIMEOUT_SECONDS 10

#define STR2(x) #x
#define STR(x) STR2(x)
#define HEADER_VERSION \
    STR(WSG_VERSION_MAJOR) "." STR(WSG_VERSION_MINOR) "." STR(WSG_VERSION_PATCH)

/* Written on the service thread; read on the main thread only after
 * wsg_server_stop() has joined that thread. */
static int g_messages;
static int g_bad_message;

static int fail(const char *what) {
    fprintf(stderr, "consumer: FAILED: %s (wsg_last_error: %s; errno: %s)\n", what,
            wsg_last_error(), errno ? strerror(errno) : "-");
    return 0;
}

static void on_message(wsg_server *server, wsg_conn_id conn, wsg_msg_type type,
                       const void *data, size_t len, void *user) {
    (void)user;
    g_messages++;
    if (type != WSG_MSG_TEXT || len != 4 || memcmp(data, "ping", 4) != 0) g_bad_message = 1;
    if (wsg_conn_send(server, conn, type, data, len) != WSG_OK) g_bad_message = 1;
}

static int write_all(int fd, const void *buf, size_t len) {
    const unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return 0;
        p += n;
        len -= (size_t)n;
    }
    return 1;
}

/* Reads exactly len bytes (each recv bounded by SO_RCVTIMEO). */
static int read_exact(int fd, unsigned char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return 0;
        buf += n;
        len -= (size_t)n;
    }
    return 1;
}

/* Reads the HTTP response head one byte at a time, so no frame byte that
 * follows it is consumed. */
static int read_http_head(int fd, char *buf, size_t cap) {
    size_t n = 0;
    while (n + 1 < cap) {
        if (!read_exact(fd, (unsigned char *)buf + n, 1)) return 0;
        n++;
        buf[n] = '\0';
        if (n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0) return 1;
    }
    return 0;
}

/* Whether the response head has a header `name` (any case) whose value,
 * without surrounding blanks, is exactly `value`. */
static int header_is(const char *head, const char *name, const char *value) {
    size_t nlen = strlen(name), vlen = strlen(value);
    const char *line = strstr(head, "\r\n");
    while (line && line[2] != '\r') {
        const char *p = line + 2;
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            p += nlen + 1;
            while (*p == ' ' || *p == '\t') p++;
            if (strncmp(p, value, vlen) == 0) {
                p += vlen;
                while (*p == ' ' || *p == '\t') p++;
                if (p[0] == '\r' && p[1] == '\n') return 1;
            }
        }
        line = strstr(line + 2, "\r\n");
    }
    return 0;
}

/* Sends one masked client frame (FIN set) with a payload under 126 bytes. */
static int send_frame(int fd, unsigned opcode, const void *payload, size_t len) {
    static const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    unsigned char frame[2 + 4 + 125];
    const unsigned char *p = payload;
    if (len > 125) return 0;
    frame[0] = (unsigned char)(0x80u | opcode);
    frame[1] = (unsigned char)(0x80u | len);
    memcpy(frame + 2, mask, 4);
    for (size_t i = 0; i < len; i++) frame[6 + i] = p[i] ^ mask[i % 4];
    return write_all(fd, frame, 6 + len);
}

/* Reads one unmasked server frame with a payload under 126 bytes. */
static int read_frame(int fd, unsigned *first_byte, unsigned char *payload, size_t *len) {
    unsigned char head[2];
    if (!read_exact(fd, head, 2)) return 0;
    if (head[1] & 0x80u) return 0; /* servers must not mask */
    *first_byte = head[0];
    *len = head[1] & 0x7fu;
    if (*len > 125) return 0;
    return read_exact(fd, payload, *len);
}

static int connect_loopback(int port) {
    struct sockaddr_in addr;
    struct timeval tv;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    tv.tv_sec = IO_TIMEOUT_SECONDS;
    tv.tv_usec = 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The client side of the test; the server is already running on `port`. */
static int talk(int port) {
    char head[4096];
    char request[512];
    unsigned char payload[125];
    unsigned first;
    size_t len;
    int ok = 0;
    int fd = connect_loopback(port);
    if (fd < 0) return fail("connect to 127.0.0.1");

    snprintf(request, sizeof request,
             "GET / HTTP/1.1\r\n"
             "Host: 127.0.0.1:%d\r\n"
             "Upgrade: websocket\r\n"
             "Connection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n"
             "\r\n",
             port);
    if (!write_all(fd, request, strlen(request))) {
        fail("send the upgrade request");
        goto out;
    }
    if (!read_http_head(fd, head, sizeof head)) {
        fail("read the upgrade response");
        goto out;
    }
    if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
        fprintf(stderr, "consumer: response is not 101:\n%s\n", head);
        fail("upgrade refused");
        goto out;
    }
    /* The accept value for this key is the worked example of RFC 6455, 1.3:
     * base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")). */
    if (!header_is(head, "Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")) {
        fprintf(stderr, "consumer: response:\n%s\n", head);
        fail("Sec-WebSocket-Accept is missing or wrong");
        goto out;
    }

    if (!send_frame(fd, 0x1, "ping", 4)) {
        fail("send the text frame");
        goto out;
    }
    if (!read_frame(fd, &first, payload, &len)) {
        fail("read the echoed frame");
        goto out;
    }
    if (first != 0x81 || len != 4 || memcmp(payload, "ping", 4) != 0) {
        fprintf(stderr, "consumer: got frame 0x%02x with %zu bytes\n", first, len);
        fail("the echo is not one final unmasked text frame \"ping\"");
        goto out;
    }

    /* Close handshake: 1000 out, a close frame back. */
    payload[0] = 0x03;
    payload[1] = 0xe8;
    if (!send_frame(fd, 0x8, payload, 2)) {
        fail("send the close frame");
        goto out;
    }
    if (!read_frame(fd, &first, payload, &len) || first != 0x88) {
        fail("read the close frame answering ours");
        goto out;
    }
    ok = 1;
out:
    close(fd);
    return ok;
}

int main(void) {
    wsg_config *cfg = NULL;
    wsg_server *server = NULL;
    int port = 0;
    int ok = 0;

    if (wsg_version_num() != WSG_VERSION_NUM) {
        fprintf(stderr, "consumer: header is %d but the library is %d\n", WSG_VERSION_NUM,
                wsg_version_num());
        return 1;
    }
    if (strcmp(wsg_version(), HEADER_VERSION) != 0) {
        fprintf(stderr, "consumer: wsg_version() is \"%s\", header says \"%s\"\n", wsg_version(),
                HEADER_VERSION);
        return 1;
    }

    if (wsg_config_new(&cfg) != WSG_OK) {
        fail("wsg_config_new");
        return 1;
    }
    if (wsg_config_set_string(cfg, "listen.host", "127.0.0.1") != WSG_OK ||
        wsg_config_set_int(cfg, "listen.port", 0) != WSG_OK ||
        wsg_config_set_string(cfg, "log.level", "error") != WSG_OK) {
        fail("configure");
        goto out;
    }
    if (wsg_server_new(&server, cfg) != WSG_OK) {
        fail("wsg_server_new");
        goto out;
    }
    if (wsg_server_on_message(server, on_message, NULL, NULL) != WSG_OK) {
        fail("wsg_server_on_message");
        goto out;
    }
    if (wsg_server_start(server) != WSG_OK) {
        fail("wsg_server_start");
        goto out;
    }
    if (wsg_server_port(server, &port) != WSG_OK || port <= 0 || port > 65535) {
        fail("wsg_server_port");
        goto out;
    }
    ok = talk(port);
    if (wsg_server_stop(server) != WSG_OK) {
        fail("wsg_server_stop");
        ok = 0;
    }
    if (ok && (g_messages != 1 || g_bad_message)) {
        fprintf(stderr, "consumer: on_message ran %d times (bad: %d), want once with \"ping\"\n",
                g_messages, g_bad_message);
        ok = 0;
    }
out:
    wsg_server_free(server);
    wsg_config_free(cfg);
    if (!ok) return 1;
    printf("consumer ok (wsgate %s, port %d)\n", wsg_version(), port);
    return 0;
}
