#include "position.h"

#include "text.h"

void chat_embed_position(wsg_server *server, const char *topic, const wsg_position *pos,
                         wsg_history_message *msg, void *user) {
    (void)server;
    (void)topic;
    (void)user;
    /* {0,0} is no position: a message published while the cluster is down
       is delivered before Redis numbers it. A page handed "0-0" would come
       back asking for the whole history; without "pos" it keeps the last
       real one it saw. */
    if (pos->epoch == 0 && pos->offset == 0) return;
    wsg_msg_type type;
    const void *data;
    size_t len;
    if (wsg_history_message_payload(msg, &type, &data, &len) != WSG_OK) return;
    const char *text = data;
    if (type != WSG_MSG_TEXT || len == 0 || text[0] != '{') return;
    char where[WSG_POSITION_TEXT_MAX];
    if (wsg_position_format(pos, where, sizeof where) != WSG_OK) return;
    size_t next = 1; /* the first thing inside the object: "}" needs no comma */
    while (next < len && (text[next] == ' ' || text[next] == '\t' || text[next] == '\n' || text[next] == '\r'))
        next++;
    jbuf b = {0};
    jbuf_raw(&b, "{\"pos\":\"");
    jbuf_raw(&b, where);
    jbuf_raw(&b, next < len && text[next] == '}' ? "\"" : "\",");
    jbuf_bytes(&b, text + 1, len - 1);
    /* Too big to embed (limits.max_queue_bytes) or out of memory: the
       message still goes, without its position. */
    if (!b.failed) wsg_history_message_set(msg, b.data, b.len);
    jbuf_free(&b);
}
