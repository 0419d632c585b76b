/* cmocka helpers for suites that drive a tsrv (testutil.h) with wsclient
 * clients: open one and learn the id the server gave it, expect a text
 * message. Include after <cmocka.h>. */
#ifndef WSGATE_TEST_CLIENTS_H
#define WSGATE_TEST_CLIENTS_H

#include <string.h>

#include "testutil.h"
#include "wsclient.h"

/* A client and the id the server gave it. */
typedef struct {
    wsc *c;
    wsg_conn_id id;
} client;

/* Connects to t on 127.0.0.1 with extra request `headers` (may be NULL)
 * and waits for the server's open. */
static inline client open_client(tsrv *t, const char *headers) {
    int before = tsrv_opens(t), status = 0;
    client k;
    k.c = wsc_connect("127.0.0.1", t->port, "/", headers, 3000, &status);
    assert_non_null(k.c);
    assert_true(WAIT_UNTIL(tsrv_opens(t) == before + 1, 3000));
    k.id = tsrv_last_open(t);
    return k;
}

/* The next message on c, within 3 s, is the text `want`. */
static inline void expect_text(wsc *c, const char *want) {
    wsc_frame f;
    assert_int_equal(wsc_recv_message(c, &f, 3000), 1);
    assert_int_equal(f.opcode, 1);
    if (f.len != strlen(want) || memcmp(f.data, want, f.len) != 0)
        fail_msg("expected '%s', got '%.*s'", want, (int)f.len, (const char *)f.data);
    wsc_frame_free(&f);
}

#endif
