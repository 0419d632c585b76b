/* wsclient.h - minimal WebSocket (RFC 6455) client for the wsgate test suite.
 *
 * Every blocking call is bounded by a timeout. There is no global state: each
 * wsc object is independent, so different threads may each drive their own
 * clients concurrently (a single wsc must not be used by two threads at once).
 * Only poll() is used, so fd numbers above FD_SETSIZE are fine.
 *
 * Timeouts are in milliseconds; a value <= 0 means "do not wait" (only data
 * already available is used).
 */
#ifndef WSCLIENT_H
#define WSCLIENT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wsc wsc;               /* one client connection */

typedef struct wsc_frame {            /* one received frame or message */
    int opcode;                       /* 1 text, 2 binary, 8 close, 9 ping, 10 pong, 0 continuation */
    int fin;
    unsigned char *data;              /* malloc'd, NUL-terminated; free with wsc_frame_free.
                                         For close frames this is the raw payload (code + reason),
                                         so the reason text starts at data + 2 when len >= 2. */
    size_t len;
    int close_code;                   /* opcode 8: code from payload, or 1005 if none; else 0 */
} wsc_frame;

/* Connect TCP to host:port (numeric IPv4/IPv6 literal), perform the HTTP/1.1
 * upgrade for `path` (NULL means "/") with optional extra header lines
 * (each ending in "\r\n"). Validates the 101 status, Upgrade, Connection and
 * Sec-WebSocket-Accept. timeout_ms bounds connect + handshake.
 * Returns NULL on failure; *status_out (if non-NULL) gets the HTTP status seen,
 * or 0 if no complete response head arrived. A 101 with a bad accept/upgrade
 * header yields NULL with status 101. */
wsc *wsc_connect(const char *host, int port, const char *path, const char *extra_headers,
                 int timeout_ms, int *status_out);

/* Same, and *response_out (if non-NULL) receives the malloc'd, NUL-terminated
 * response head (status line .. blank line) whenever one was received, on
 * success as well as on rejection; otherwise NULL. Caller frees. */
wsc *wsc_connect_ex(const char *host, int port, const char *path, const char *extra_headers,
                    int timeout_ms, int *status_out, char **response_out);

/* Plain TCP connection (no handshake), TCP_NODELAY set, blocking mode.
 * Returns the fd or -1. */
int wsc_tcp_connect(const char *host, int port, int timeout_ms);

/* Wrap an already connected socket whose handshake is done (or that is a
 * socketpair end, for self-tests). Takes ownership of fd. */
wsc *wsc_from_fd(int fd);

int wsc_fd(wsc *c);

/* Send one masked frame (random mask per frame). opcode is sent as given in
 * the low 4 bits; bits 0x40/0x20/0x10 set RSV1/RSV2/RSV3 (for negative tests).
 * 0 on success, -1 on error (including a 10 s write timeout). */
int wsc_send_frame(wsc *c, int opcode, int fin, const void *data, size_t len);
/* Same but unmasked (a protocol violation, for testing server rejection). */
int wsc_send_frame_unmasked(wsc *c, int opcode, int fin, const void *data, size_t len);
int wsc_send_text(wsc *c, const char *s);                 /* one FIN text frame of strlen(s) */
int wsc_send_binary(wsc *c, const void *data, size_t len);
int wsc_send_close(wsc *c, int code, const char *reason);  /* code < 0: empty close payload */
int wsc_send_raw(wsc *c, const void *data, size_t len);    /* raw bytes, e.g. half a frame */

/* Encode a frame into a malloc'd buffer (*out_len bytes) without sending it,
 * e.g. to send it in pieces with wsc_send_raw. masked != 0 uses a random mask. */
unsigned char *wsc_build_frame(int opcode, int fin, const void *data, size_t len, int masked,
                               size_t *out_len);

/* Next frame within timeout_ms: 1 with *out filled, 0 on timeout, -1 on
 * EOF/socket error/protocol error (masked server frame, RSV bits, bad control
 * frame). With auto_pong on (default) pings are answered with a pong carrying
 * the same payload and not returned. Pings are counted in both modes. */
int wsc_recv_frame(wsc *c, wsc_frame *out, int timeout_ms);

/* Next whole data message (continuation frames reassembled; out->opcode is the
 * first frame's opcode, fin = 1). Control frames arriving meanwhile are
 * returned as the result (close, pong, and ping when auto_pong is off); a
 * partially received message is kept and continued on the next call.
 * Same return convention as wsc_recv_frame. */
int wsc_recv_message(wsc *c, wsc_frame *out, int timeout_ms);

void wsc_frame_free(wsc_frame *f);
void wsc_set_auto_pong(wsc *c, int on);
int wsc_pings_seen(wsc *c);

/* Wait until the peer closes TCP (EOF or reset) within timeout_ms, handling
 * and discarding frames. Returns 1 if closed, 0 on timeout. *close_code (if
 * non-NULL) gets the code of a received close frame, else stays 1006. If
 * reply_close, a received close frame is echoed (unless we already sent one). */
int wsc_wait_closed(wsc *c, int timeout_ms, int reply_close, int *close_code);

void wsc_abort(wsc *c);  /* SO_LINGER {1,0} + close: peer sees RST. Frees c. */
void wsc_free(wsc *c);   /* close the socket without a close frame, free c */
/* Send close(code) (unless already sent), wait up to timeout_ms for the
 * server's close frame and EOF, free c. Returns the server's close code
 * (1005 if its close frame was empty) or -1 if none arrived. */
int wsc_close(wsc *c, int code, int timeout_ms);

/* ---- raw fd helpers (for wsc_tcp_connect sockets); all use poll ---- */
int wsc_fd_send_all(int fd, const void *data, size_t len, int timeout_ms); /* 0 / -1 */
/* Read up to cap bytes: >0 bytes read, 0 EOF, -1 error (errno set, e.g. ECONNRESET), -2 timeout. */
long wsc_fd_recv(int fd, void *buf, size_t cap, int timeout_ms);
/* Read an HTTP response head (up to 16 KiB); returns its status code or 0.
 * *response_out (if non-NULL) gets the malloc'd head (or the partial data if
 * EOF/timeout came first). Bytes after the head may be consumed and dropped. */
int wsc_fd_read_response(int fd, int timeout_ms, char **response_out);
/* Discard input until EOF/reset: 1 if closed, 0 on timeout. */
int wsc_fd_wait_closed(int fd, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
