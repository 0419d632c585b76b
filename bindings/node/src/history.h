/* History positions across the JavaScript boundary, and the history hook
 * the addon offers instead of a JavaScript one.
 *
 * wsgate's history hook (wsg_history_fn) runs on the service thread and must
 * shape the message before it returns; JavaScript runs on its own thread and
 * could only answer by blocking the service thread until the event loop got
 * to it. So the hook is written here in C, for the common need: tell the
 * client where it is (the `historyPosition` server option). */
#ifndef WSGATE_NODE_HISTORY_H
#define WSGATE_NODE_HISTORY_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <wsgate/wsgate.h>

/* Longest field name historyPosition accepts. */
#define WSN_FIELD_MAX 64

/* { epoch, offset, text }: the numbers as bigints (64-bit, exact), text as
 * wsg_position_format writes it. */
napi_value wsn_position_value(napi_env env, const wsg_position *pos);

/* A position from JavaScript: its text ("EPOCH-OFFSET", wsg_position_parse)
 * or an object { epoch, offset } of bigints or safe non-negative integers.
 * 0 on success; -1 with an exception pending (WSG_EINVAL, the text's error
 * from the library). */
int wsn_position_from(napi_env env, napi_value v, wsg_position *out);

/* NULL when `field` may be historyPosition's field name (1..WSN_FIELD_MAX
 * printable ASCII characters without '"' or a backslash: written into JSON as it
 * is), else why not. */
const char *wsn_field_problem(const char *field);

/* Registers the hook that embeds each history text message's position as
 * "FIELD":"EPOCH-OFFSET" right after the opening '{' of a message that starts
 * with '{' (others, binary ones and messages without a position yet are
 * left as published). `field` is copied. Before the server listens.
 * On failure *why says why (WSG_EINVAL: see wsn_field_problem). */
wsg_status wsn_embed_positions(wsg_server *srv, const char *field, const char **why);

#endif
