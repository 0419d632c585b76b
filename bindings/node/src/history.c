/* History positions for JavaScript and the position-embedding hook: see history.h. */
#include "history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Throws an Error (TypeError when `type`) with .code the status name and
 * .status its number, as addon.c's errors. */
static void throw_coded(napi_env env, int type, wsg_status st, const char *msg) {
    napi_value code, text, err, num;
    napi_create_string_utf8(env, wsg_status_str(st), NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
    napi_status ok = type ? napi_create_type_error(env, code, text, &err) : napi_create_error(env, code, text, &err);
    if (ok == napi_ok) {
        napi_create_int32(env, (int32_t)st, &num);
        napi_set_named_property(env, err, "status", num);
        napi_throw(env, err);
    }
}

napi_value wsn_position_value(napi_env env, const wsg_position *pos) {
    char text[WSG_POSITION_TEXT_MAX] = "";
    wsg_position_format(pos, text, sizeof text); /* cannot fail: the buffer is the maximum */
    napi_value obj, v;
    napi_create_object(env, &obj);
    napi_create_bigint_uint64(env, pos->epoch, &v);
    napi_set_named_property(env, obj, "epoch", v);
    napi_create_bigint_uint64(env, pos->offset, &v);
    napi_set_named_property(env, obj, "offset", v);
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, obj, "text", v);
    return obj;
}

/* One number of a position: a bigint of 0..2^64-1, or a safe non-negative
 * integer. */
static int get_u64(napi_env env, napi_value obj, const char *name, uint64_t *out) {
    napi_value v;
    napi_valuetype t = napi_undefined;
    if (napi_get_named_property(env, obj, name, &v) == napi_ok) napi_typeof(env, v, &t);
    if (t == napi_bigint) {
        bool lossless = false;
        if (napi_get_value_bigint_uint64(env, v, out, &lossless) == napi_ok && lossless) return 0;
    } else if (t == napi_number) {
        double d = -1;
        napi_get_value_double(env, v, &d);
        if (d >= 0 && d <= 9007199254740991.0 && d == (double)(uint64_t)d) {
            *out = (uint64_t)d;
            return 0;
        }
    }
    char msg[160];
    snprintf(msg, sizeof msg,
             "a position's %s must be a bigint (0..2^64-1) or a non-negative safe integer, as parsePosition gives it",
             name);
    throw_coded(env, 1, WSG_EINVAL, msg);
    return -1;
}

int wsn_position_from(napi_env env, napi_value v, wsg_position *out) {
    napi_valuetype t = napi_undefined;
    napi_typeof(env, v, &t);
    if (t == napi_string) {
        char text[WSG_POSITION_TEXT_MAX];
        size_t len = 0;
        napi_get_value_string_utf8(env, v, NULL, 0, &len);
        if (len >= sizeof text) {
            throw_coded(env, 0, WSG_EINVAL,
                        "a position's text is EPOCH-OFFSET in decimal, at most 41 characters: this one is longer");
            return -1;
        }
        napi_get_value_string_utf8(env, v, text, sizeof text, &len);
        if (strlen(text) != len) {
            throw_coded(env, 0, WSG_EINVAL, "a position's text contains a NUL character");
            return -1;
        }
        if (wsg_position_parse(text, out) != WSG_OK) {
            throw_coded(env, 0, WSG_EINVAL, wsg_last_error());
            return -1;
        }
        return 0;
    }
    if (t == napi_object) {
        wsg_position p = {0, 0};
        if (get_u64(env, v, "epoch", &p.epoch) != 0 || get_u64(env, v, "offset", &p.offset) != 0) return -1;
        *out = p;
        return 0;
    }
    throw_coded(env, 1, WSG_EINVAL, "a position must be its text ('EPOCH-OFFSET') or { epoch, offset }");
    return -1;
}

/* ---- the hook: service thread */

static int is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static void embed_position(wsg_server *srv, const char *topic, const wsg_position *pos,
                           wsg_history_message *msg, void *user) {
    (void)srv;
    (void)topic;
    const char *field = user;
    wsg_msg_type type;
    const void *data = NULL;
    size_t len = 0;
    if (wsg_history_message_payload(msg, &type, &data, &len) != WSG_OK) return;
    const char *in = data;
    if (type != WSG_MSG_TEXT || len == 0 || in[0] != '{') return;
    /* {0, 0}: no position yet (a publish kept while Redis is down gets its
     * own later). "0-0" would send the client back to the whole history. */
    if (!pos || (pos->epoch == 0 && pos->offset == 0)) return;
    char text[WSG_POSITION_TEXT_MAX];
    if (wsg_position_format(pos, text, sizeof text) != WSG_OK) return;
    size_t i = 1;
    while (i < len && is_json_space(in[i])) i++;
    const int empty = i < len && in[i] == '}'; /* "{}": no comma after the field */
    const size_t flen = strlen(field), tlen = strlen(text);
    /* '{' '"' field '":"' text '"' [','] then the rest after the '{'. */
    const size_t n = 1 + 1 + flen + 3 + tlen + 1 + (empty ? 0 : 1) + (len - 1);
    char stack[2048];
    char *out = n <= sizeof stack ? stack : malloc(n);
    if (!out) return; /* out of memory: delivered as published */
    char *w = out;
    *w++ = '{';
    *w++ = '"';
    memcpy(w, field, flen);
    w += flen;
    memcpy(w, "\":\"", 3);
    w += 3;
    memcpy(w, text, tlen);
    w += tlen;
    *w++ = '"';
    if (!empty) *w++ = ',';
    memcpy(w, in + 1, len - 1);
    /* Refused only when larger than limits.max_queue_bytes: delivered as
     * published then. */
    wsg_history_message_set(msg, out, n);
    if (out != stack) free(out);
}

const char *wsn_field_problem(const char *field) {
    size_t len = strlen(field);
    int ok = len >= 1 && len <= WSN_FIELD_MAX;
    for (size_t i = 0; ok && i < len; i++) {
        unsigned char c = (unsigned char)field[i];
        ok = c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
    }
    return ok ? NULL
              : "historyPosition must be a JSON field name of 1..64 printable ASCII characters without '\"' or '\\', "
                "e.g. 'pos' (it is written into each message as it is)";
}

wsg_status wsn_embed_positions(wsg_server *srv, const char *field, const char **why) {
    if ((*why = wsn_field_problem(field)) != NULL) return WSG_EINVAL;
    size_t len = strlen(field);
    char *copy = malloc(len + 1);
    if (!copy) {
        *why = "out of memory";
        return WSG_ENOMEM;
    }
    memcpy(copy, field, len + 1);
    wsg_status st = wsg_server_on_history(srv, embed_position, copy, free);
    if (st != WSG_OK) {
        *why = wsg_last_error();
        free(copy); /* the library took it only on success */
    }
    return st;
}
