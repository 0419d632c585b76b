#include "text.h"

#include <stdlib.h>
#include <string.h>

static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes s[0..n) into out[cap]; -1 when it does not fit or holds a NUL. */
static int decode(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%' && i + 2 < n && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
            c = (char)(hex(s[i + 1]) * 16 + hex(s[i + 2]));
            i += 2;
        }
        if (c == '\0' || o + 1 >= cap) return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 1;
}

int query_get(const char *query, const char *name, char *out, size_t cap) {
    const size_t want = strlen(name);
    char key[64];
    for (const char *p = query; p && *p;) {
        const char *end = strchr(p, '&');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        size_t klen = eq ? (size_t)(eq - p) : n;
        if (decode(p, klen, key, sizeof key) == 1 && strlen(key) == want && !memcmp(key, name, want)) {
            if (!eq) {
                if (cap) out[0] = '\0';
                return 1;
            }
            return decode(eq + 1, n - klen - 1, out, cap);
        }
        p = end ? end + 1 : NULL;
    }
    return 0;
}

static int valid_name(const char *s, const char *extra) {
    size_t n = strlen(s);
    if (n == 0 || n > CHAT_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 (c && strchr(extra, c));
        if (!ok) return 0;
    }
    return 1;
}

int valid_room(const char *s) { return valid_name(s, "_-"); }
int valid_user(const char *s) { return valid_name(s, "_.-"); }

static void put(jbuf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + n + 1 > cap) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void jbuf_raw(jbuf *b, const char *s) { put(b, s, strlen(s)); }

void jbuf_bytes(jbuf *b, const char *s, size_t n) { put(b, s, n); }

void jbuf_str(jbuf *b, const char *s, size_t len) {
    static const char digits[] = "0123456789abcdef";
    put(b, "\"", 1);
    size_t run = 0; /* bytes copied as they are, written in one go */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        put(b, s + i - run, run);
        run = 0;
        if (c == '"') put(b, "\\\"", 2);
        else if (c == '\\') put(b, "\\\\", 2);
        else if (c == '\n') put(b, "\\n", 2);
        else if (c == '\t') put(b, "\\t", 2);
        else {
            char u[6] = {'\\', 'u', '0', '0', digits[c >> 4], digits[c & 15]};
            put(b, u, 6);
        }
    }
    put(b, s + len - run, run);
    put(b, "\"", 1);
}

void jbuf_field(jbuf *b, const char *key, const char *value) {
    jbuf_str(b, key, strlen(key));
    put(b, ":", 1);
    jbuf_str(b, value, strlen(value));
}

void jbuf_free(jbuf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
