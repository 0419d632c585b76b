/* wsclient_selftest.c - self-check of the test WebSocket client.
 *
 *   wsc_selftest              offline checks (socketpair + in-process TCP server)
 *   wsc_selftest PORT [N]     also live checks against an echo server on
 *                             127.0.0.1:PORT with N (default 1000) simultaneous clients
 */
#if !defined(_GNU_SOURCE) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE
#endif
#include "wsclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

static int failures;
#define CHECK(cond) do { if (!(cond)) { failures++; \
    fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } } while (0)

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void pattern(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 131 + seed + (i >> 8));
}

static int read_exact(int fd, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        long r = wsc_fd_recv(fd, p, n, 5000);
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Server-side decoder for one client frame; requires the mask bit. */
static int read_client_frame(int fd, int *op, int *fin, unsigned char **data, size_t *len,
                             int *hdr_len)
{
    unsigned char h[14], *mask;
    uint64_t n;
    int hl = 2;
    if (read_exact(fd, h, 2)) return -1;
    *op = h[0] & 0x0f;
    *fin = h[0] >> 7;
    if (!(h[1] & 0x80)) return -1;
    n = h[1] & 0x7f;
    if (n == 126) { if (read_exact(fd, h + 2, 2)) return -1; n = (uint64_t)h[2] << 8 | h[3]; hl = 4; }
    else if (n == 127) {
        if (read_exact(fd, h + 2, 8)) return -1;
        n = 0;
        for (int i = 0; i < 8; i++) n = n << 8 | h[2 + i];
        hl = 10;
    }
    if (read_exact(fd, h + hl, 4)) return -1;
    mask = h + hl;
    *data = malloc(n + 1);
    if (read_exact(fd, *data, n)) { free(*data); return -1; }
    for (uint64_t i = 0; i < n; i++) (*data)[i] ^= mask[i & 3];
    *len = n;
    if (hdr_len) *hdr_len = hl + 4;
    return 0;
}

/* ------------------------------------------------------------- encoder */

struct enc_job { int fd; size_t len; int ok; int hdr; };

static void *enc_reader(void *arg)
{
    struct enc_job *j = arg;
    unsigned char *d, *want = malloc(j->len + 1);
    size_t len;
    int op, fin;
    pattern(want, j->len, 7);
    j->ok = read_client_frame(j->fd, &op, &fin, &d, &len, &j->hdr) == 0 && op == 2 && fin == 1 &&
            len == j->len && memcmp(d, want, len) == 0;
    if (j->ok) free(d);
    free(want);
    return NULL;
}

static void test_encoder(void)
{
    static const size_t sizes[] = { 0, 1, 125, 126, 127, 65535, 65536, 3 * 1024 * 1024 + 7 };
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        int sv[2];
        pthread_t t;
        CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
        wsc *c = wsc_from_fd(sv[0]);
        struct enc_job j = { sv[1], sizes[i], 0, 0 };
        unsigned char *buf = malloc(sizes[i] + 1);
        pattern(buf, sizes[i], 7);
        pthread_create(&t, NULL, enc_reader, &j);
        CHECK(wsc_send_binary(c, buf, sizes[i]) == 0);
        pthread_join(t, NULL);
        CHECK(j.ok);
        CHECK(j.hdr == (sizes[i] < 126 ? 6 : sizes[i] <= 65535 ? 8 : 14));
        free(buf);
        wsc_free(c);
        close(sv[1]);
    }
    /* Fragmented send: text fin=0, continuation fin=1. */
    int sv[2], op, fin;
    unsigned char *d;
    size_t len;
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    wsc *c = wsc_from_fd(sv[0]);
    CHECK(wsc_send_frame(c, 1, 0, "ab", 2) == 0 && wsc_send_frame(c, 0, 1, "c", 1) == 0);
    CHECK(read_client_frame(sv[1], &op, &fin, &d, &len, NULL) == 0 && op == 1 && !fin && len == 2);
    free(d);
    CHECK(read_client_frame(sv[1], &op, &fin, &d, &len, NULL) == 0 && op == 0 && fin && len == 1);
    free(d);
    CHECK(wsc_send_close(c, 1000, "bye") == 0);
    CHECK(read_client_frame(sv[1], &op, &fin, &d, &len, NULL) == 0 && op == 8 && len == 5 &&
          d[0] == 0x03 && d[1] == 0xe8 && memcmp(d + 2, "bye", 3) == 0);
    free(d);
    wsc_free(c);
    close(sv[1]);
}

/* ------------------------------------------------------------- decoder */

struct stream_job { int fd; unsigned char *data; size_t len; int mode; };

/* Write the byte stream in pieces: mode 0 one byte at a time, 1 odd chunk
 * sizes with pauses (forces split reads across headers), 2 all at once. */
static void *stream_writer(void *arg)
{
    struct stream_job *j = arg;
    size_t off = 0, k = 0;
    while (off < j->len) {
        size_t n = j->mode == 0 ? 1 : j->mode == 1 ? 1 + (k * 7919) % 70001 : j->len;
        if (n > j->len - off) n = j->len - off;
        if (wsc_fd_send_all(j->fd, j->data + off, n, 5000)) break;
        off += n;
        if (j->mode == 1 && k++ % 3 == 0) sleep_ms(1);
    }
    return NULL;
}

static void append(unsigned char **buf, size_t *len, const void *p, size_t n)
{
    *buf = realloc(*buf, *len + n);
    memcpy(*buf + *len, p, n);
    *len += n;
}

static void append_frame(unsigned char **buf, size_t *len, int op, int fin, const void *d, size_t n)
{
    size_t fl;
    unsigned char *f = wsc_build_frame(op, fin, d, n, 0, &fl);
    append(buf, len, f, fl);
    free(f);
}

static void test_decoder(int mode)
{
    static const size_t sizes[] = { 0, 5, 125, 126, 65535, 65536, 4 * 1024 * 1024 + 3 };
    const size_t nsizes = sizeof sizes / sizeof *sizes;
    unsigned char *stream = NULL, *big = malloc(sizes[nsizes - 1]);
    size_t slen = 0;
    /* Hand-built frames, including a non-minimal 64-bit length for 3 bytes. */
    static const unsigned char hand[] = {
        0x81, 0x02, 'h', 'i',
        0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0, 3, 'x', 'y', 'z',
        0x88, 0x00,
        0x88, 0x05, 0x03, 0xe9, 'b', 'y', 'e',
    };
    append(&stream, &slen, hand, sizeof hand);
    for (size_t i = 0; i < nsizes; i++) {
        pattern(big, sizes[i], (unsigned)i);
        append_frame(&stream, &slen, i & 1 ? 1 : 2, 1, big, sizes[i]);
    }
    int sv[2];
    pthread_t t;
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    wsc *c = wsc_from_fd(sv[0]);
    struct stream_job j = { sv[1], stream, slen, mode };
    pthread_create(&t, NULL, stream_writer, &j);

    wsc_frame f;
    int tmo = mode == 0 ? 60000 : 10000;
    CHECK(wsc_recv_frame(c, &f, tmo) == 1 && f.opcode == 1 && f.len == 2 && !strcmp((char *)f.data, "hi"));
    wsc_frame_free(&f);
    CHECK(wsc_recv_frame(c, &f, tmo) == 1 && f.opcode == 2 && f.len == 3 && !memcmp(f.data, "xyz", 4));
    wsc_frame_free(&f);
    CHECK(wsc_recv_frame(c, &f, tmo) == 1 && f.opcode == 8 && f.close_code == 1005 && f.len == 0);
    wsc_frame_free(&f);
    CHECK(wsc_recv_frame(c, &f, tmo) == 1 && f.opcode == 8 && f.close_code == 1001 &&
          !strcmp((char *)f.data + 2, "bye"));
    wsc_frame_free(&f);
    for (size_t i = 0; i < nsizes; i++) {
        pattern(big, sizes[i], (unsigned)i);
        int r = wsc_recv_frame(c, &f, tmo);
        CHECK(r == 1 && f.fin && f.opcode == (i & 1 ? 1 : 2) && f.len == sizes[i] &&
              memcmp(f.data, big, sizes[i]) == 0 && f.data[f.len] == 0);
        wsc_frame_free(&f);
    }
    pthread_join(t, NULL);
    long long t0 = now_ms();
    CHECK(wsc_recv_frame(c, &f, 150) == 0); /* nothing left: timeout */
    long long el = now_ms() - t0;
    CHECK(el >= 140 && el < 1000);
    close(sv[1]);
    CHECK(wsc_recv_frame(c, &f, 1000) == -1); /* EOF */
    wsc_free(c);
    free(stream);
    free(big);
}

/* Pings, reassembly, protocol errors, close handshake over a socketpair. */
static void test_control(void)
{
    int sv[2], op, fin;
    unsigned char *d, *s = NULL;
    size_t len, sl = 0;
    wsc_frame f;

    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    wsc *c = wsc_from_fd(sv[0]);
    /* auto-pong: ping is answered, not returned */
    append_frame(&s, &sl, 9, 1, "abc", 3);
    append_frame(&s, &sl, 1, 1, "after", 5);
    wsc_fd_send_all(sv[1], s, sl, 1000);
    CHECK(wsc_recv_frame(c, &f, 1000) == 1 && f.opcode == 1 && !strcmp((char *)f.data, "after"));
    wsc_frame_free(&f);
    CHECK(wsc_pings_seen(c) == 1);
    CHECK(read_client_frame(sv[1], &op, &fin, &d, &len, NULL) == 0 && op == 10 && len == 3 && !memcmp(d, "abc", 3));
    free(d);

    /* reassembly with a ping in between and a timeout mid-message */
    sl = 0;
    append_frame(&s, &sl, 1, 0, "Hel", 3);
    append_frame(&s, &sl, 9, 1, "p", 1);
    wsc_fd_send_all(sv[1], s, sl, 1000);
    CHECK(wsc_recv_message(c, &f, 100) == 0);
    sl = 0;
    append_frame(&s, &sl, 0, 0, "lo ", 3);
    append_frame(&s, &sl, 0, 1, "world", 5);
    wsc_fd_send_all(sv[1], s, sl, 1000);
    CHECK(wsc_recv_message(c, &f, 1000) == 1 && f.opcode == 1 && f.fin && f.len == 11 &&
          !strcmp((char *)f.data, "Hello world"));
    wsc_frame_free(&f);
    CHECK(wsc_pings_seen(c) == 2);
    CHECK(read_client_frame(sv[1], &op, &fin, &d, &len, NULL) == 0 && op == 10 && len == 1);
    free(d);

    /* auto-pong off: ping returned by recv_message, unfragmented binary passes */
    wsc_set_auto_pong(c, 0);
    sl = 0;
    append_frame(&s, &sl, 9, 1, "q", 1);
    append_frame(&s, &sl, 2, 1, "\0\1", 2);
    wsc_fd_send_all(sv[1], s, sl, 1000);
    CHECK(wsc_recv_message(c, &f, 1000) == 1 && f.opcode == 9 && f.len == 1);
    wsc_frame_free(&f);
    CHECK(wsc_recv_message(c, &f, 1000) == 1 && f.opcode == 2 && f.len == 2 && f.data[1] == 1);
    wsc_frame_free(&f);
    CHECK(wsc_pings_seen(c) == 3);

    /* continuation without a start is an error */
    sl = 0;
    append_frame(&s, &sl, 0, 1, "x", 1);
    wsc_fd_send_all(sv[1], s, sl, 1000);
    CHECK(wsc_recv_message(c, &f, 1000) == -1);

    /* close handshake: server sends close(1001), client echoes, server closes */
    sl = 0;
    append_frame(&s, &sl, 8, 1, "\x03\xe9", 2);
    wsc_fd_send_all(sv[1], s, sl, 1000);
    int code = 0;
    long long t0 = now_ms();
    CHECK(wsc_wait_closed(c, 200, 1, &code) == 0 && code == 1001); /* peer still open */
    CHECK(now_ms() - t0 >= 190);
    CHECK(read_client_frame(sv[1], &op, &fin, &d, &len, NULL) == 0 && op == 8 && len == 2 &&
          d[0] == 0x03 && d[1] == 0xe9);
    free(d);
    shutdown(sv[1], SHUT_WR);
    CHECK(wsc_wait_closed(c, 1000, 1, &code) == 1 && code == 1006);
    wsc_free(c);
    close(sv[1]);

    /* masked server frame / RSV bits / oversized control frame: errors; wait_closed still works */
    static const unsigned char bad[][8] = {
        { 0x81, 0x81, 1, 2, 3, 4, 'a' }, { 0xc1, 0x01, 'a' }, { 0x89, 0x7e, 0x00, 0x7e } };
    for (int i = 0; i < 3; i++) {
        socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
        c = wsc_from_fd(sv[0]);
        wsc_fd_send_all(sv[1], bad[i], sizeof bad[i], 1000);
        CHECK(wsc_recv_frame(c, &f, 1000) == -1 && f.data == NULL);
        close(sv[1]);
        CHECK(wsc_wait_closed(c, 1000, 1, &code) == 1);
        wsc_free(c);
    }
    free(s);
}

/* ----------------------------------------------- in-process HTTP server */

enum { SRV_OK, SRV_403, SRV_BADACCEPT, SRV_SILENT };
struct srv { int lfd, mode, saw_reset; char host[128]; };

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    int fd = accept(s->lfd, NULL, NULL);
    char *req = NULL, resp[512], acc[64], cat[128];
    unsigned char dig[EVP_MAX_MD_SIZE];
    unsigned dl;
    if (fd < 0) return NULL;
    wsc_fd_read_response(fd, 3000, &req); /* reads a request head just as well */
    if (s->mode == SRV_SILENT) { sleep_ms(600); goto out; }
    const char *k = strstr(req, "Sec-WebSocket-Key: "), *h = strstr(req, "\r\nHost: ");
    if (!k || !h) goto out;
    sscanf(h + 8, "%127[^\r]", s->host);
    int n = snprintf(cat, sizeof cat, "%.24s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", k + 19);
    EVP_Digest(cat, (size_t)n, dig, &dl, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)acc, dig, (int)dl);
    if (s->mode == SRV_BADACCEPT) acc[0] ^= 1;
    if (s->mode == SRV_403)
        n = snprintf(resp, sizeof resp, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    else /* a frame glued right after the 101 head */
        n = snprintf(resp, sizeof resp, "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n"
                     "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                     "\x81\x07welcome", acc);
    wsc_fd_send_all(fd, resp, (size_t)n, 1000);
    if (s->mode == SRV_OK) { /* expect the client to abort: read must fail with a reset */
        char tmp[64];
        long r;
        while ((r = wsc_fd_recv(fd, tmp, sizeof tmp, 3000)) > 0) {}
        s->saw_reset = r == -1 && errno == ECONNRESET;
    }
out:
    free(req);
    close(fd);
    return NULL;
}

static int listen_on(const char *ip, int *port)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int v6 = strchr(ip, ':') != NULL, fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    memset(&ss, 0, sizeof ss);
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        inet_pton(AF_INET6, ip, &a->sin6_addr);
        sl = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        inet_pton(AF_INET, ip, &a->sin_addr);
        sl = sizeof *a;
    }
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, 16)) {
        if (fd >= 0) close(fd);
        return -1;
    }
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static void test_handshake(const char *ip, int mode)
{
    struct srv s = { -1, mode, 0, "" };
    int port, st = -1;
    char *resp = NULL, want_host[160];
    pthread_t t;
    if ((s.lfd = listen_on(ip, &port)) < 0) {
        printf("  (skipping %s: cannot listen)\n", ip);
        return;
    }
    pthread_create(&t, NULL, srv_main, &s);
    long long t0 = now_ms();
    wsc *c = wsc_connect_ex(ip, port, "/chat?x=1", "Origin: http://x\r\n",
                            mode == SRV_SILENT ? 300 : 3000, &st, &resp);
    if (mode == SRV_OK) {
        wsc_frame f;
        CHECK(c != NULL && st == 101 && resp && strstr(resp, "101"));
        CHECK(c && wsc_recv_frame(c, &f, 1000) == 1 && !strcmp((char *)f.data, "welcome"));
        if (c) wsc_frame_free(&f);
        snprintf(want_host, sizeof want_host, strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, port);
        wsc_abort(c);
    } else if (mode == SRV_403) {
        CHECK(!c && st == 403 && resp && !strncmp(resp, "HTTP/1.1 403", 12) &&
              resp[strlen(resp) - 1] == '\n');
    } else if (mode == SRV_BADACCEPT) {
        CHECK(!c && st == 101 && resp);
    } else {
        long long el = now_ms() - t0;
        CHECK(!c && st == 0 && !resp && el >= 290 && el < 1000);
    }
    pthread_join(t, NULL);
    if (mode == SRV_OK) {
        CHECK(!strcmp(s.host, want_host));
        CHECK(s.saw_reset);
    }
    free(resp);
    close(s.lfd);
}

static void test_connect_fail(void)
{
    int port, st = -1;
    int lfd = listen_on("127.0.0.1", &port);
    close(lfd); /* nothing listens there any more */
    CHECK(wsc_connect("127.0.0.1", port, "/", NULL, 1000, &st) == NULL && st == 0);
    CHECK(wsc_tcp_connect("127.0.0.1", port, 1000) == -1);
    CHECK(wsc_connect("not-an-ip", 80, "/", NULL, 1000, &st) == NULL && st == 0);
}

/* ------------------------------------------- live tests vs. echo server */

static int live_port;

struct live_job { int nclients, ok; };

static void *live_worker(void *arg)
{
    struct live_job *j = arg;
    wsc **cs = calloc((size_t)j->nclients, sizeof *cs);
    char msg[64];
    int ok = 0;
    for (int i = 0; i < j->nclients; i++) cs[i] = wsc_connect("127.0.0.1", live_port, "/", NULL, 10000, NULL);
    for (int i = 0; i < j->nclients; i++) {
        snprintf(msg, sizeof msg, "hello %d", i);
        if (cs[i]) wsc_send_text(cs[i], msg);
    }
    for (int i = 0; i < j->nclients; i++) {
        wsc_frame f;
        snprintf(msg, sizeof msg, "hello %d", i);
        if (cs[i] && wsc_recv_message(cs[i], &f, 10000) == 1 && !strcmp((char *)f.data, msg)) ok++;
        if (cs[i]) wsc_frame_free(&f);
    }
    for (int i = 0; i < j->nclients; i++)
        if (cs[i] && wsc_close(cs[i], 1000, 5000) != 1000) ok--;
    j->ok = ok;
    free(cs);
    return NULL;
}

static void test_live(int nclients)
{
    enum { NT = 10 };
    pthread_t t[NT];
    struct live_job j[NT];
    int total = 0, st;
    wsc_frame f;
    for (int i = 0; i < NT; i++) {
        j[i].nclients = nclients / NT;
        pthread_create(&t[i], NULL, live_worker, &j[i]);
    }
    for (int i = 0; i < NT; i++) { pthread_join(t[i], NULL); total += j[i].ok; }
    printf("  live: %d/%d clients echoed and closed cleanly\n", total, NT * (nclients / NT));
    CHECK(total == NT * (nclients / NT));

    wsc *c = wsc_connect("::1", live_port, "/big", NULL, 5000, &st);
    if (!c) c = wsc_connect("127.0.0.1", live_port, "/big", NULL, 5000, &st);
    CHECK(c != NULL);
    if (!c) return;
    size_t n = 5 * 1024 * 1024;
    unsigned char *big = malloc(n);
    pattern(big, n, 3);
    CHECK(wsc_send_frame(c, 2, 0, big, n / 2) == 0 && wsc_send_frame(c, 0, 1, big + n / 2, n - n / 2) == 0);
    CHECK(wsc_recv_message(c, &f, 10000) == 1 && f.opcode == 2 && f.len == n && !memcmp(f.data, big, n));
    wsc_frame_free(&f);
    CHECK(wsc_send_frame(c, 9, 1, "pp", 2) == 0);
    CHECK(wsc_recv_frame(c, &f, 5000) == 1 && f.opcode == 10 && !strcmp((char *)f.data, "pp"));
    wsc_frame_free(&f);
    CHECK(wsc_close(c, 4000, 5000) == 4000);
    free(big);
}

int main(int argc, char **argv)
{
    printf("encoder\n");
    test_encoder();
    for (int mode = 0; mode < 3; mode++) {
        printf("decoder mode %d\n", mode);
        test_decoder(mode);
    }
    printf("control frames\n");
    test_control();
    printf("handshake\n");
    for (int mode = SRV_OK; mode <= SRV_SILENT; mode++) test_handshake("127.0.0.1", mode);
    test_handshake("::1", SRV_OK);
    test_connect_fail();
    if (argc > 1) {
        live_port = atoi(argv[1]);
        printf("live echo server on port %d\n", live_port);
        test_live(argc > 2 ? atoi(argv[2]) : 1000);
    }
    printf(failures ? "%d FAILURES\n" : "all OK\n", failures);
    return failures != 0;
}
