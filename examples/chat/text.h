/* Text helpers of the chat demo: query parameters, name checks and a small
 * growable buffer that writes JSON. Plain C99, no wsgate types. */
#ifndef CHAT_TEXT_H
#define CHAT_TEXT_H

#include <stddef.h>

/* The value of query parameter `name` in `query` (as sent: percent-encoded,
 * '+' for a space), decoded into out[cap]. 1: found and fits (NUL-terminated);
 * 0: absent; -1: present but longer than cap - 1 bytes or holding a NUL. */
int query_get(const char *query, const char *name, char *out, size_t cap);

/* Room names: 1..32 of [A-Za-z0-9_-]. User names: 1..32 of [A-Za-z0-9_.-]. */
#define CHAT_NAME_MAX 32
int valid_room(const char *s);
int valid_user(const char *s);

/* A NUL-terminated string that grows; `failed` is set (and stays) when an
 * allocation failed, so callers check once at the end. */
typedef struct jbuf {
    char *data;
    size_t len, cap;
    int failed;
} jbuf;

void jbuf_raw(jbuf *b, const char *s);
/* `n` bytes of `s` as they are (e.g. the rest of a JSON text). */
void jbuf_bytes(jbuf *b, const char *s, size_t n);
/* `s` (len bytes of UTF-8) as a JSON string, quotes included. */
void jbuf_str(jbuf *b, const char *s, size_t len);
/* "key": "value" pairs after a '{' or a ',' the caller wrote. */
void jbuf_field(jbuf *b, const char *key, const char *value);
void jbuf_free(jbuf *b);

#endif
