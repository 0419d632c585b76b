/* Where a page is in its room: every room message carries its history
 * position as "pos", and a page that reconnects sends the last one it saw
 * (?from=EPOCH-OFFSET) to get what it missed (README "Chat demo"). */
#ifndef CHAT_POSITION_H
#define CHAT_POSITION_H

#include <wsgate/wsgate.h>

/* The history hook (wsg_server_on_history): a room message that is a JSON
 * object {...} reaches the room as {"pos":"EPOCH-OFFSET",...}; anything else
 * goes as published. Service thread. */
void chat_embed_position(wsg_server *server, const char *topic, const wsg_position *pos,
                         wsg_history_message *msg, void *user);

#endif
