#define _POSIX_C_SOURCE 200809L /* strdup */
#include "chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "position.h"
#include "text.h"

#define DEFAULT_ROOM "lobby"
#define MAX_TEXT 2000 /* bytes of one chat message; limits.max_message_bytes is the hard cap */

/* What a page that came back with ?from= is told when it cannot have every
 * message it missed (the chat's resume protocol, README "Chat demo"). */
#define GONE_TEXT "some missed messages are no longer kept: you may have missed messages before this point"
#define CLUSTER_DOWN_TEXT "history unavailable (cluster down): missed messages are not shown"
#define BAD_FROM_TEXT "bad from position: live messages only"
#define NO_HISTORY_TEXT "this server keeps no history of the room: missed messages are not shown"

/* One open connection's membership, the connection's user pointer. */
typedef struct member {
    char user[256]; /* a JWT's user id may be longer than a typed name */
    char room[CHAT_NAME_MAX + 1];
    char topic[CHAT_NAME_MAX + 6]; /* "room:" + room */
    int joined;                    /* the room was told (join): it is told of the leave too */
} member;

static unsigned long guests; /* guest-N numbering (service thread only) */

static void send_json(wsg_server *s, wsg_conn_id id, jbuf *b) {
    if (!b->failed) wsg_conn_send(s, id, WSG_MSG_TEXT, b->data, b->len);
    jbuf_free(b);
}

static void publish_json(wsg_server *s, const char *topic, jbuf *b) {
    if (!b->failed) wsg_server_publish(s, topic, WSG_MSG_TEXT, b->data, b->len);
    jbuf_free(b);
}

static void send_error(wsg_server *s, wsg_conn_id id, const char *text) {
    jbuf b = {0};
    jbuf_raw(&b, "{\"type\":\"error\",");
    jbuf_field(&b, "text", text);
    jbuf_raw(&b, "}");
    send_json(s, id, &b);
}

/* A notice or message to the whole room: {"type":T,"user":U,"room":R[,"text":X]}. */
static void publish_event(wsg_server *s, const member *m, const char *type, const char *text, size_t len) {
    jbuf b = {0};
    jbuf_raw(&b, "{");
    jbuf_field(&b, "type", type);
    jbuf_raw(&b, ",");
    jbuf_field(&b, "user", m->user);
    jbuf_raw(&b, ",");
    jbuf_field(&b, "room", m->room);
    if (text) {
        jbuf_raw(&b, ",\"text\":");
        jbuf_str(&b, text, len);
    }
    jbuf_raw(&b, "}");
    publish_json(s, m->topic, &b);
}

/* Without a JWT the user names themselves (?name=) or becomes guest-N. An
 * invalid name is accepted without a user id: on_open then closes with a
 * reason the page can show (a refused upgrade shows nothing in a browser). */
static void on_auth(wsg_server *s, wsg_auth_request *req, void *user) {
    (void)s;
    (void)user;
    const char *jwt_user = "", *query = "";
    wsg_auth_request_get(req, WSG_AUTH_JWT_USER, &jwt_user);
    if (*jwt_user) {
        wsg_auth_accept(req, NULL); /* keeps the verified token's user */
        return;
    }
    wsg_auth_request_get(req, WSG_AUTH_QUERY, &query);
    char name[CHAT_NAME_MAX + 1];
    int found = query_get(query, "name", name, sizeof name);
    if (found == 0 || (found == 1 && name[0] == '\0')) {
        snprintf(name, sizeof name, "guest-%lu", ++guests);
        wsg_auth_accept(req, name);
    } else if (found == 1 && valid_user(name)) {
        wsg_auth_accept(req, name);
    } else {
        wsg_auth_accept(req, NULL);
    }
}

static void join(wsg_server *s, member *m) {
    m->joined = 1;
    publish_event(s, m, "join", NULL, 0);
}

/* wsg_conn_subscribe_from's answer: the missed messages were delivered (or
 * could not be); then the room hears of the join, so the joiner's own join
 * comes after what it missed. */
static void resumed(wsg_server *s, const wsg_result *r, void *user) {
    wsg_conn_id id = *(const wsg_conn_id *)user;
    free(user);
    member *m = NULL;
    if (wsg_conn_get_user(s, id, (void **)&m) != WSG_OK || !m) return; /* closed meanwhile */
    wsg_status st = wsg_result_status(r);
    if (st == WSG_ESTATE) return; /* the server stops: every page is told so (1001) */
    if (st == WSG_EGONE) {
        send_error(s, id, GONE_TEXT);
    } else if (st == WSG_ECLUSTER) {
        send_error(s, id, CLUSTER_DOWN_TEXT);
    } else if (st != WSG_OK) {
        char why[512];
        snprintf(why, sizeof why, "missed messages are not shown: %s", wsg_result_message(r));
        send_error(s, id, why);
    }
    join(s, m);
}

/* How a connection joins its room. */
typedef enum joining {
    JOIN_FAILED,
    JOIN_LIVE,       /* subscribed: the live messages from now on */
    JOIN_PENDING,    /* subscribed from a position: resumed() finishes */
    JOIN_NO_HISTORY, /* subscribed live: the room keeps no history (cluster.history_topics) */
} joining;

/* Subscribes m's connection to its room, from `from` when not NULL. */
static joining subscribe(wsg_server *s, wsg_conn_id id, const member *m, const wsg_position *from) {
    if (!from) return wsg_conn_subscribe(s, id, m->topic) == WSG_OK ? JOIN_LIVE : JOIN_FAILED;
    wsg_conn_id *ctx = malloc(sizeof *ctx);
    if (!ctx) return JOIN_FAILED;
    *ctx = id;
    wsg_status st = wsg_conn_subscribe_from(s, id, m->topic, from, resumed, ctx);
    if (st == WSG_OK) return JOIN_PENDING;
    free(ctx);
    if (st == WSG_EINVAL && wsg_conn_subscribe(s, id, m->topic) == WSG_OK) return JOIN_NO_HISTORY;
    return JOIN_FAILED;
}

static void send_welcome(wsg_server *s, wsg_conn_id id, const member *m) {
    jbuf b = {0};
    jbuf_raw(&b, "{\"type\":\"welcome\",");
    jbuf_field(&b, "user", m->user);
    jbuf_raw(&b, ",");
    jbuf_field(&b, "room", m->room);
    jbuf_raw(&b, "}");
    send_json(s, id, &b);
}

/* Joins the room: the welcome first, then, for a page that came back with
 * ?from=EPOCH-OFFSET (the "pos" of the last room message it saw), what it
 * missed, then the join and the live messages. */
static void on_open(wsg_server *s, wsg_conn_id id, void *user) {
    (void)user;
    wsg_conn_info *info = NULL;
    if (wsg_conn_info_get(s, id, &info) != WSG_OK) return; /* already gone */
    const char *user_id = "", *query = "";
    wsg_conn_info_string(info, WSG_INFO_USER_ID, &user_id);
    wsg_conn_info_string(info, WSG_INFO_QUERY, &query);
    member *m = calloc(1, sizeof *m);
    char room[CHAT_NAME_MAX + 1];
    int found = query_get(query, "room", room, sizeof room);
    if (found == 0) snprintf(room, sizeof room, "%s", DEFAULT_ROOM);
    int room_ok = found == 0 || (found == 1 && valid_room(room));
    int user_ok = *user_id && strlen(user_id) < sizeof m->user;
    char from_text[WSG_POSITION_TEXT_MAX];
    wsg_position from;
    int from_found = query_get(query, "from", from_text, sizeof from_text);
    int resume = from_found == 1 && wsg_position_parse(from_text, &from) == WSG_OK;
    if (m && room_ok && user_ok) {
        snprintf(m->user, sizeof m->user, "%s", user_id);
        snprintf(m->room, sizeof m->room, "%s", room);
        snprintf(m->topic, sizeof m->topic, "room:%s", room);
    }
    wsg_conn_info_free(info);
    if (!m) {
        wsg_conn_close(s, id, 1011, "out of memory");
        return;
    }
    if (!room_ok || !user_ok) {
        free(m);
        wsg_conn_close(s, id, room_ok ? CHAT_CLOSE_BAD_NAME : CHAT_CLOSE_BAD_ROOM,
                       room_ok ? "name must be 1-32 letters, digits, '.', '-' or '_'"
                               : "room must be 1-32 letters, digits, '-' or '_'");
        return;
    }
    if (wsg_conn_set_user(s, id, m) != WSG_OK) {
        free(m);
        wsg_conn_close(s, id, 1011, "cannot join the room");
        return;
    }
    /* A subscription from a position runs after this callback, so the
       welcome goes first; a plain one is in place at once. */
    joining how = subscribe(s, id, m, resume ? &from : NULL);
    if (how == JOIN_FAILED) {
        wsg_conn_set_user(s, id, NULL);
        free(m);
        wsg_conn_close(s, id, 1011, "cannot join the room");
        return;
    }
    send_welcome(s, id, m);
    if (how == JOIN_PENDING) return;
    if (how == JOIN_NO_HISTORY)
        send_error(s, id, NO_HISTORY_TEXT);
    else if (from_found != 0)
        send_error(s, id, BAD_FROM_TEXT);
    join(s, m);
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* What an answer to /who or /msg needs once presence answers (the callback
 * runs later, on the service thread): who asked, and for /msg the message. */
typedef struct pending {
    wsg_conn_id asker;
    char room[CHAT_NAME_MAX + 1];
    char to[256];
    int to_self;  /* /msg to oneself: the sender gets no second copy */
    jbuf message; /* /msg: the JSON to deliver */
} pending;

/* /who: the room's users on every instance (presence), sorted, each once (a
 * user may have several tabs). While the cluster is down the list holds this
 * instance's users and says so. */
static void who_answer(wsg_server *s, const wsg_result *r, void *user) {
    pending *p = user;
    size_t count = wsg_result_count(r);
    const char **names = calloc(count ? count : 1, sizeof *names);
    size_t n = 0;
    for (size_t i = 0; names && i < count; i++) {
        const char *user_id = "";
        if (wsg_result_presence(r, i, NULL, &user_id, NULL) == WSG_OK && *user_id) names[n++] = user_id;
    }
    if (n) qsort(names, n, sizeof *names, compare_names);
    jbuf b = {0};
    jbuf_raw(&b, "{\"type\":\"who\",");
    jbuf_field(&b, "room", p->room);
    jbuf_raw(&b, ",\"users\":[");
    for (size_t i = 0, written = 0; i < n; i++) {
        if (i && !strcmp(names[i], names[i - 1])) continue;
        if (written++) jbuf_raw(&b, ",");
        jbuf_str(&b, names[i], strlen(names[i]));
    }
    jbuf_raw(&b, "]}");
    if (!names) b.failed = 1;
    free(names);
    send_json(s, p->asker, &b);
    if (wsg_result_status(r) != WSG_OK) {
        char why[512];
        snprintf(why, sizeof why, "only this server's users are listed: %s", wsg_result_message(r));
        send_error(s, p->asker, why);
    }
    free(p);
}

static void who(wsg_server *s, wsg_conn_id id, const member *m) {
    pending *p = calloc(1, sizeof *p);
    if (!p) return;
    p->asker = id;
    snprintf(p->room, sizeof p->room, "%s", m->room);
    if (wsg_topic_presence(s, m->topic, who_answer, p) != WSG_OK) {
        send_error(s, id, wsg_last_error());
        free(p);
    }
}

/* /msg, once presence said where USER is: delivered to every connection of
 * USER on any instance and copied back to the sender, or "not online". */
static void direct_answer(wsg_server *s, const wsg_result *r, void *user) {
    pending *p = user;
    const jbuf *b = &p->message;
    wsg_status st = wsg_result_status(r);
    if (st == WSG_OK && wsg_result_count(r) == 0) {
        char why[sizeof p->to + 32];
        snprintf(why, sizeof why, "%s is not online", p->to);
        send_error(s, p->asker, why);
    } else if ((st = wsg_user_send(s, p->to, WSG_MSG_TEXT, b->data, b->len)) == WSG_ENOTFOUND) {
        char why[sizeof p->to + 32];
        snprintf(why, sizeof why, "%s is not online", p->to);
        send_error(s, p->asker, why);
    } else if (st != WSG_OK) {
        send_error(s, p->asker, wsg_last_error());
    } else if (!p->to_self) {
        wsg_conn_send(s, p->asker, WSG_MSG_TEXT, b->data, b->len); /* the sender's copy */
    }
    jbuf_free(&p->message);
    free(p);
}

/* /msg USER text: to every connection of USER, and back to the sender. */
static void direct(wsg_server *s, wsg_conn_id id, const member *m, const char *args, size_t len) {
    size_t u = 0;
    while (u < len && args[u] != ' ') u++;
    size_t t = u;
    while (t < len && args[t] == ' ') t++;
    if (u == 0 || t == len) {
        send_error(s, id, "usage: /msg USER text");
        return;
    }
    pending *p = calloc(1, sizeof *p);
    if (!p) return;
    if (u >= sizeof p->to) {
        free(p);
        send_error(s, id, "no such user online");
        return;
    }
    p->asker = id;
    memcpy(p->to, args, u);
    p->to[u] = '\0';
    p->to_self = strcmp(p->to, m->user) == 0;
    jbuf *b = &p->message;
    jbuf_raw(b, "{\"type\":\"direct\",");
    jbuf_field(b, "from", m->user);
    jbuf_raw(b, ",");
    jbuf_field(b, "to", p->to);
    jbuf_raw(b, ",\"text\":");
    jbuf_str(b, args + t, len - t);
    jbuf_raw(b, "}");
    if (b->failed || wsg_user_presence(s, p->to, direct_answer, p) != WSG_OK) {
        if (!b->failed) send_error(s, id, wsg_last_error());
        jbuf_free(b);
        free(p);
    }
}

static void on_message(wsg_server *s, wsg_conn_id id, wsg_msg_type type, const void *data, size_t len,
                       void *user) {
    (void)user;
    member *m = NULL;
    if (wsg_conn_get_user(s, id, (void **)&m) != WSG_OK || !m) return;
    const char *text = data;
    if (type != WSG_MSG_TEXT) {
        send_error(s, id, "send text messages");
        return;
    }
    if (len > MAX_TEXT) {
        char why[64];
        snprintf(why, sizeof why, "a message is at most %d bytes", MAX_TEXT);
        send_error(s, id, why);
        return;
    }
    if (len == 0) return;
    if (text[0] != '/') {
        publish_event(s, m, "message", text, len);
    } else if ((len == 4 || (len > 4 && text[4] == ' ')) && !memcmp(text, "/who", 4)) {
        who(s, id, m);
    } else if (len > 5 && !memcmp(text, "/msg ", 5)) {
        direct(s, id, m, text + 5, len - 5);
    } else {
        send_error(s, id, "unknown command: try /who or /msg USER text");
    }
}

static void on_close(wsg_server *s, wsg_conn_id id, int code, const char *reason, size_t reason_len,
                     wsg_close_cause cause, void *user) {
    (void)code;
    (void)reason;
    (void)reason_len;
    (void)cause;
    (void)user;
    member *m = NULL;
    if (wsg_conn_get_user(s, id, (void **)&m) != WSG_OK || !m) return;
    wsg_conn_set_user(s, id, NULL);
    /* Still subscribed during on_close, the connection is past sending:
       only the others get the notice. Not joined yet (it closed before its
       missed messages came): nobody was told it came. */
    if (m->joined) publish_event(s, m, "leave", NULL, 0);
    free(m);
}

wsg_status chat_install(wsg_server *server) {
    wsg_status st;
    if ((st = wsg_server_on_auth(server, on_auth, NULL, NULL)) != WSG_OK) return st;
    if ((st = wsg_server_on_open(server, on_open, NULL, NULL)) != WSG_OK) return st;
    if ((st = wsg_server_on_message(server, on_message, NULL, NULL)) != WSG_OK) return st;
    if ((st = wsg_server_on_history(server, chat_embed_position, NULL, NULL)) != WSG_OK) return st;
    /* A bad room or name gets the same answer every time: the page asks the
       user rather than retrying (the close-code contract). */
    if ((st = wsg_server_set_close_advice(server, CHAT_CLOSE_BAD_ROOM, CHAT_CLOSE_BAD_NAME, WSG_RECONNECT_NO)) != WSG_OK)
        return st;
    return wsg_server_on_close(server, on_close, NULL, NULL);
}
