/* Trampolines from wsgate's callbacks to the Go handlers: see trampolines.h. */
#include "trampolines.h"

#include <signal.h>
#include <pthread.h>

#include "_cgo_export.h"

/* Per thread: how deep in Go handlers, the OnAuth request being decided and
 * the history message being shaped. */
static __thread int depth;
static __thread const wsg_auth_request *auth_current;
static __thread const wsg_history_message *history_current;

int wsgo_in_handler(void) { return depth > 0; }

int wsgo_auth_here(const wsg_auth_request *req) { return req != NULL && req == auth_current; }

int wsgo_history_here(const wsg_history_message *msg) { return msg != NULL && msg == history_current; }

static void on_open(wsg_server *s, wsg_conn_id conn, void *user) {
    (void)s;
    depth++;
    wsgoOpen((uintptr_t)user, conn);
    depth--;
}

static void on_message(wsg_server *s, wsg_conn_id conn, wsg_msg_type type, const void *data, size_t len,
                       void *user) {
    (void)s;
    depth++;
    wsgoMessage((uintptr_t)user, conn, (int)type, (void *)data, len);
    depth--;
}

static void on_close(wsg_server *s, wsg_conn_id conn, int code, const char *reason, size_t reason_len,
                     wsg_close_cause cause, void *user) {
    int advice = (int)wsg_close_code_advice(s, code);
    depth++;
    wsgoClose((uintptr_t)user, conn, code, (char *)reason, reason_len, (int)cause, advice);
    depth--;
}

static void on_log(wsg_server *s, wsg_log_level level, const char *event, const char *json, size_t json_len,
                   void *user) {
    (void)s;
    depth++;
    wsgoLog((uintptr_t)user, (int)level, (char *)event, (char *)json, json_len);
    depth--;
}

static void on_drain(wsg_server *s, wsg_conn_id conn, size_t queued_bytes, void *user) {
    (void)s;
    depth++;
    wsgoDrain((uintptr_t)user, conn, queued_bytes);
    depth--;
}

static void on_auth(wsg_server *s, wsg_auth_request *req, void *user) {
    (void)s;
    const wsg_auth_request *outer = auth_current;
    auth_current = req;
    depth++;
    wsgoAuth((uintptr_t)user, req);
    depth--;
    auth_current = outer;
}

static void on_history(wsg_server *s, const char *topic, const wsg_position *pos, wsg_history_message *msg,
                       void *user) {
    (void)s;
    const uint64_t epoch = pos ? pos->epoch : 0, offset = pos ? pos->offset : 0;
    const wsg_history_message *outer = history_current;
    history_current = msg;
    depth++;
    wsgoHistory((uintptr_t)user, (char *)topic, epoch, offset, msg);
    depth--;
    history_current = outer;
}

/* An asynchronous call's answer: a handler like the others (a call that
 * waits for the service thread returns ErrBusy inside it). */
static void on_result(wsg_server *s, const wsg_result *result, void *user) {
    (void)s;
    depth++;
    wsgoResult((uintptr_t)user, (wsg_result *)result);
    depth--;
}

wsg_status wsgo_subscribe_from_fn(wsg_server *server, wsg_conn_id conn, const char *topic,
                                  const wsg_position *from, uintptr_t handle) {
    return handle ? wsg_conn_subscribe_from(server, conn, topic, from, on_result, (void *)handle)
                  : wsg_conn_subscribe_from(server, conn, topic, from, NULL, NULL);
}

wsg_status wsgo_register_history(wsg_server *server, uintptr_t handle, int on) {
    return on ? wsg_server_on_history(server, on_history, (void *)handle, NULL)
              : wsg_server_on_history(server, NULL, NULL, NULL);
}

wsg_status wsgo_register(wsg_server *server, uintptr_t handle, unsigned which) {
    void *user = (void *)handle;
    wsg_status st = WSG_OK;
    if (st == WSG_OK && (which & WSGO_OPEN)) st = wsg_server_on_open(server, on_open, user, NULL);
    if (st == WSG_OK && (which & WSGO_MESSAGE)) st = wsg_server_on_message(server, on_message, user, NULL);
    if (st == WSG_OK && (which & WSGO_CLOSE)) st = wsg_server_on_close(server, on_close, user, NULL);
    if (st == WSG_OK && (which & WSGO_LOG)) st = wsg_server_on_log(server, on_log, user, NULL);
    if (st == WSG_OK && (which & WSGO_DRAIN)) st = wsg_server_on_drain(server, on_drain, user, NULL);
    if (st == WSG_OK && (which & WSGO_AUTH)) st = wsg_server_on_auth(server, on_auth, user, NULL);
    return st;
}

wsg_status wsgo_start(wsg_server *server) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    wsg_status st = wsg_server_start(server);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return st;
}
