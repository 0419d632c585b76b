/* The chat itself: wsgate callbacks that turn connections into members of
 * rooms (topics "room:NAME"), messages into JSON published to the room, and
 * the commands /who and /msg. Every callback runs on the service thread, so
 * the state here needs no lock. */
#ifndef CHAT_CHAT_H
#define CHAT_CHAT_H

#include <wsgate/wsgate.h>

/* Close codes the page shows and does not retry (4000-4099: fix the URL). */
#define CHAT_CLOSE_BAD_ROOM 4001
#define CHAT_CLOSE_BAD_NAME 4002

/* Registers on_auth, on_open, on_message, on_close and the history hook
 * (position.h). Before listening. */
wsg_status chat_install(wsg_server *server);

#endif
