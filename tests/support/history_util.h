/* For the history suites (core and cluster): a history hook that prefixes
 * every message with its position ("EPOCH-OFFSET|payload"), and reading
 * such messages back from a client. */
#ifndef WSGATE_HISTORY_UTIL_H
#define WSGATE_HISTORY_UTIL_H

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <wsgate/wsgate.h>

#include "testutil.h"
#include "wsclient.h"

static inline void position_prefix(wsg_server *s, const char *topic, const wsg_position *pos,
                                   wsg_history_message *msg, void *user) {
    (void)s;
    (void)topic;
    (void)user;
    wsg_msg_type type;
    const void *data;
    size_t len;
    if (wsg_history_message_payload(msg, &type, &data, &len) != WSG_OK) return;
    char out[512];
    char text[WSG_POSITION_TEXT_MAX];
    wsg_position_format(pos, text, sizeof text);
    int n = snprintf(out, sizeof out, "%s|%.*s", text, (int)len, (const char *)data);
    wsg_history_message_set(msg, out, (size_t)n);
}

static inline void install_position_prefix(wsg_server *srv) {
    wsg_server_on_history(srv, position_prefix, NULL, NULL);
}

/* A server (tsrv_start, no echo) with `install` run before it starts, e.g.
 * install_position_prefix. */
static inline tsrv *history_server(const char *const *settings, void (*install)(wsg_server *srv)) {
    tsrv_before_start = install;
    tsrv *t = tsrv_start(settings, 0);
    tsrv_before_start = NULL;
    return t;
}

/* One message of c within ms: its position and payload (cap bytes). 1 when
 * one came. */
static inline int recv_positioned(wsc *c, int ms, wsg_position *pos, char *payload, size_t cap) {
    wsc_frame f;
    if (wsc_recv_message(c, &f, ms) != 1) return 0;
    char text[600];
    size_t n = f.len < sizeof text - 1 ? f.len : sizeof text - 1;
    memcpy(text, f.data, n);
    text[n] = 0;
    wsc_frame_free(&f);
    char *bar = strchr(text, '|');
    if (!bar) return 0;
    *bar = 0;
    if (wsg_position_parse(text, pos) != WSG_OK) return 0;
    snprintf(payload, cap, "%s", bar + 1);
    return 1;
}

/* A subscribe_from answer: status, message and position (from_cb fills it). */
typedef struct {
    pthread_mutex_t mu;
    int calls;
    wsg_status status;
    int has_position;
    wsg_position pos;
    char message[256];
} from_answer;

static inline void from_cb(wsg_server *s, const wsg_result *r, void *user) {
    (void)s;
    from_answer *a = (from_answer *)user;
    wsg_position p = {0, 0};
    int has = wsg_result_position(r, &p) == WSG_OK;
    pthread_mutex_lock(&a->mu);
    a->calls++;
    a->status = wsg_result_status(r);
    a->has_position = has;
    a->pos = p;
    snprintf(a->message, sizeof a->message, "%s", wsg_result_message(r));
    pthread_mutex_unlock(&a->mu);
}

static inline void from_answer_init(from_answer *a) {
    memset(a, 0, sizeof *a);
    pthread_mutex_init(&a->mu, NULL);
}

static inline int from_calls(from_answer *a) {
    pthread_mutex_lock(&a->mu);
    int n = a->calls;
    pthread_mutex_unlock(&a->mu);
    return n;
}

#endif
