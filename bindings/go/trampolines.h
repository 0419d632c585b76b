/* The C side of the Go binding: the functions wsgate calls (they forward to
 * the Go functions exported by callbacks.go) and small helpers that must run
 * as one C call. Internal to the package. */
#ifndef WSGO_TRAMPOLINES_H
#define WSGO_TRAMPOLINES_H

#include <stdint.h>
#include <wsgate/wsgate.h>

/* Which handlers the Go Server has: only those are registered, so without
 * an OnLog handler the library keeps its default sink (JSON lines on stderr). */
enum {
    WSGO_OPEN = 1, WSGO_MESSAGE = 2, WSGO_CLOSE = 4, WSGO_LOG = 8, WSGO_DRAIN = 16, WSGO_AUTH = 32
};

/* Registers the trampolines for `which`, each with the cgo.Handle `handle`
 * as its user pointer (an integer, never a Go pointer). */
wsg_status wsgo_register(wsg_server *server, uintptr_t handle, unsigned which);

/* Registers (on != 0) or removes the history hook's trampoline, with the
 * cgo.Handle `handle` as its user pointer. */
wsg_status wsgo_register_history(wsg_server *server, uintptr_t handle, int on);

/* wsg_conn_subscribe_from with the result trampoline and the cgo.Handle
 * `handle` as its user pointer (it calls wsgoResult once, then the handle
 * is the Go side's to delete), or no callback when handle is 0. */
wsg_status wsgo_subscribe_from_fn(wsg_server *server, wsg_conn_id conn, const char *topic,
                                  const wsg_position *from, uintptr_t handle);

/* 1 while this thread runs a Go handler (any server). */
int wsgo_in_handler(void);

/* 1 when `req` is the request of the OnAuth handler running on this thread. */
int wsgo_auth_here(const wsg_auth_request *req);

/* 1 when `msg` is the message of the OnHistory hook running on this thread. */
int wsgo_history_here(const wsg_history_message *msg);

/* wsg_server_start with every signal blocked in the new service thread: the
 * process's signals are Go's to handle, on Go's threads. */
wsg_status wsgo_start(wsg_server *server);

#endif
