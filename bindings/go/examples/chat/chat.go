package main

// The chat itself, as examples/chat/chat.c: connections become members of
// rooms (topics "room:NAME"), messages become JSON published to the room,
// and the commands /who and /msg. Every handler runs on wsgate's service
// thread, one at a time, so the state here needs no lock (SubscribeFromFunc's
// answer, which finishes a reconnecting page's resume, runs there too);
// /who and /msg wait for presence (which may ask Redis) in a goroutine of
// their own that touches none of it.
//
// Resuming: rooms keep a history (cluster.history_topics=room:*), the
// history hook writes each room message's position into it as "pos", and a
// page that reconnects passes the last one it saw as ?from=EPOCH-OFFSET: it
// is subscribed from there and gets what it missed, then the live messages.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"wsgate"
)

const (
	defaultRoom = "lobby"
	maxText     = 2000 // bytes of one chat message; limits.max_message_bytes is the hard cap
	maxUser     = 255  // a JWT's user id may be longer than a typed name
	// Close codes the page shows and does not retry (4000-4099: fix the URL).
	closeBadRoom = 4001
	closeBadName = 4002
)

type member struct{ user, room, topic string }

type chat struct {
	members map[wsgate.ConnID]*member
	guests  int
}

// install sets the chat's handlers in opts (installHistory adds the history
// hook once the Server exists).
func install(opts *wsgate.Options) *chat {
	c := &chat{members: map[wsgate.ConnID]*member{}}
	opts.OnAuth = c.onAuth
	opts.OnOpen = c.onOpen
	opts.OnMessage = c.onMessage
	opts.OnClose = c.onClose
	return c
}

// installHistory registers the history hook (before the server listens).
func (c *chat) installHistory(s *wsgate.Server) error { return s.OnHistory(c.onHistory) }

// validName: 1..32 bytes of letters, digits and the bytes in extra.
func validName(s, extra string) bool {
	if len(s) < 1 || len(s) > 32 {
		return false
	}
	for _, r := range s {
		ok := r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(extra, r))
		if !ok {
			return false
		}
	}
	return true
}

func validRoom(s string) bool { return validName(s, "-_") }
func validUser(s string) bool { return validName(s, "-_.") }

// queryValue is parameter name's first value; present is false when absent.
func queryValue(query, name string) (value string, present bool) {
	vals, _ := url.ParseQuery(query) // a bad escape elsewhere does not hide the rest
	v, present := vals[name]
	if !present {
		return "", false
	}
	return v[0], true
}

// event is every message the page understands (empty fields left out).
type event struct {
	Type  string   `json:"type"`
	User  string   `json:"user,omitempty"`
	Room  string   `json:"room,omitempty"`
	From  string   `json:"from,omitempty"`
	To    string   `json:"to,omitempty"`
	Text  *string  `json:"text,omitempty"`
	Users []string `json:"users,omitempty"`
}

func encode(e event) []byte {
	b, _ := json.Marshal(e) // strings and slices only: cannot fail
	return b
}

func text(s string) *string { return &s }

func (c *chat) sendError(s *wsgate.Server, id wsgate.ConnID, msg string) {
	s.Send(id, wsgate.TextMessage, encode(event{Type: "error", Text: text(msg)}))
}

func (c *chat) publish(s *wsgate.Server, m *member, typ string, msg *string) {
	s.Publish(m.topic, wsgate.TextMessage, encode(event{Type: typ, User: m.user, Room: m.room, Text: msg}))
}

// Without a JWT the user names themselves (?name=) or becomes guest-N. An
// invalid name is accepted without a user id: onOpen then closes with a
// reason the page can show (a refused upgrade shows nothing in a browser).
func (c *chat) onAuth(s *wsgate.Server, r *wsgate.AuthRequest) {
	if r.JWTUser() != "" {
		r.Accept("") // keeps the verified token's user
		return
	}
	name, present := queryValue(r.Query(), "name")
	switch {
	case !present || name == "":
		c.guests++
		r.Accept(fmt.Sprintf("guest-%d", c.guests))
	case validUser(name):
		r.Accept(name)
	default:
		r.Accept("")
	}
}

func (c *chat) onOpen(s *wsgate.Server, id wsgate.ConnID) {
	info, err := s.ConnInfo(id)
	if err != nil {
		return // already gone
	}
	room, present := queryValue(info.Query, "room")
	if !present {
		room = defaultRoom
	}
	if !validRoom(room) {
		s.CloseConn(id, closeBadRoom, "room must be 1-32 letters, digits, '-' or '_'")
		return
	}
	if info.UserID == "" || len(info.UserID) > maxUser {
		s.CloseConn(id, closeBadName, "name must be 1-32 letters, digits, '.', '-' or '_'")
		return
	}
	m := &member{user: info.UserID, room: room, topic: "room:" + room}
	var from *wsgate.Position
	fromText, resuming := queryValue(info.Query, "from")
	if resuming {
		if p, err := wsgate.ParsePosition(fromText); err == nil {
			from = &p
		}
	}
	c.members[id] = m
	// A subscription from a position answers after this handler, so the
	// welcome goes first; a plain one is in place at once.
	how := c.subscribe(s, id, m, from)
	if how == joinFailed {
		delete(c.members, id)
		s.CloseConn(id, 1011, "cannot join the room")
		return
	}
	s.Send(id, wsgate.TextMessage, encode(event{Type: "welcome", User: m.user, Room: m.room}))
	switch {
	case how == joinPending:
		return // resumed finishes
	case how == joinNoHistory:
		c.sendError(s, id, noHistoryText)
	case resuming:
		c.sendError(s, id, "bad from position: live messages only")
	}
	c.publish(s, m, "join", nil)
}

const noHistoryText = "this server keeps no history of the room: missed messages are not shown"

// How a connection joins its room.
type joining int

const (
	joinFailed    joining = iota
	joinLive              // subscribed: the live messages from now on
	joinPending           // subscribed from a position: resumed finishes
	joinNoHistory         // subscribed live: the room keeps no history (cluster.history_topics)
)

// subscribe subscribes m's connection to its room, from from when not nil.
func (c *chat) subscribe(s *wsgate.Server, id wsgate.ConnID, m *member, from *wsgate.Position) joining {
	if from == nil {
		if s.Subscribe(id, m.topic) != nil {
			return joinFailed
		}
		return joinLive
	}
	err := s.SubscribeFromFunc(id, m.topic, from, func(_ wsgate.Position, err error) { c.resumed(s, id, err) })
	switch {
	case err == nil:
		return joinPending
	case errors.Is(err, wsgate.ErrInvalid) && s.Subscribe(id, m.topic) == nil:
		return joinNoHistory
	}
	return joinFailed
}

// resumed is SubscribeFromFunc's answer for a page that came back: the
// messages it missed were delivered (or could not be); then the room hears
// of the join, so the joiner's own join comes after what it missed. It runs
// on the service thread, like the handlers.
func (c *chat) resumed(s *wsgate.Server, id wsgate.ConnID, err error) {
	m := c.members[id]
	if m == nil {
		return // closed meanwhile
	}
	var e *wsgate.Error
	switch {
	case err == nil:
	case errors.Is(err, wsgate.ErrState):
		return // the server stops: every page is told so (1001)
	case errors.Is(err, wsgate.ErrGone):
		c.sendError(s, id, "some missed messages are no longer kept: you may have missed messages before this point")
	case errors.Is(err, wsgate.ErrCluster):
		c.sendError(s, id, "history unavailable (cluster down): missed messages are not shown")
	case errors.As(err, &e):
		c.sendError(s, id, "missed messages are not shown: "+e.Message)
	}
	c.publish(s, m, "join", nil)
}

// onHistory embeds each room message's position in it, for the page to
// hand back when it reconnects: a JSON object {...} goes out as
// {"pos":"EPOCH-OFFSET",...}; anything else, or a message without a
// position yet, as published. It runs on the
// service thread for each live message and again for each replay: the
// result depends on the message and its position only.
func (c *chat) onHistory(topic string, pos wsgate.Position, msg *wsgate.HistoryMessage) {
	_, data := msg.Payload()
	// No position yet (Redis down, the message is kept to be written
	// later): nothing to embed; the page keeps the last real one.
	if pos.Epoch == 0 || len(data) == 0 || data[0] != '{' {
		return
	}
	rest := data[1:]
	out := make([]byte, 0, len(data)+64)
	out = append(out, `{"pos":"`...)
	out = append(out, pos.String()...)
	out = append(out, '"')
	if t := bytes.TrimLeft(rest, " \t\r\n"); len(t) > 0 && t[0] != '}' {
		out = append(out, ',')
	}
	out = append(out, rest...)
	msg.Set(out) // cannot fail: ASCII after the "{" keeps the text valid UTF-8
}

// who answers /who: the room's users on every instance (presence), sorted,
// each once (a user may have several tabs open). Presence may need Redis,
// so a goroutine waits for it (a handler must not) and answers; it reads
// nothing of the chat's state. While the cluster is down the list holds
// this instance's users and says so.
func (c *chat) who(s *wsgate.Server, id wsgate.ConnID, m *member) {
	room, topic := m.room, m.topic
	go func() {
		entries, err := s.TopicPresence(topic)
		var e *wsgate.Error
		if err != nil && !errors.Is(err, wsgate.ErrCluster) {
			if errors.As(err, &e) && !errors.Is(err, wsgate.ErrState) && !errors.Is(err, wsgate.ErrClosed) {
				c.sendError(s, id, e.Message)
			}
			return // stopping: nobody to answer
		}
		seen := map[string]bool{}
		users := []string{}
		for _, p := range entries {
			if p.UserID == "" || seen[p.UserID] {
				continue
			}
			seen[p.UserID] = true
			users = append(users, p.UserID)
		}
		sort.Strings(users)
		b, _ := json.Marshal(struct {
			Type  string   `json:"type"`
			Room  string   `json:"room"`
			Users []string `json:"users"`
		}{"who", room, users})
		s.Send(id, wsgate.TextMessage, b)
		if errors.As(err, &e) {
			c.sendError(s, id, "only this server's users are listed: "+e.Message)
		}
	}()
}

// direct answers /msg USER text: to every connection of USER on any
// instance, and a copy back to the sender; "USER is not online" when
// presence finds none (a goroutine waits for it, as in who).
func (c *chat) direct(s *wsgate.Server, id wsgate.ConnID, m *member, args string) {
	to, rest, _ := strings.Cut(args, " ")
	msg := strings.TrimLeft(rest, " ")
	if to == "" || msg == "" {
		c.sendError(s, id, "usage: /msg USER text")
		return
	}
	if len(to) > maxUser {
		c.sendError(s, id, "no such user online")
		return
	}
	b := encode(event{Type: "direct", From: m.user, To: to, Text: text(msg)})
	toSelf := to == m.user
	go func() {
		// With the cluster down (ErrCluster) the send still tries: the
		// user may be here, and the send says where it failed.
		entries, err := s.UserPresence(to)
		if err == nil && len(entries) == 0 {
			c.sendError(s, id, to+" is not online")
			return
		}
		if err != nil && !errors.Is(err, wsgate.ErrCluster) {
			return // stopping
		}
		err = s.UserSend(to, wsgate.TextMessage, b)
		switch {
		case errors.Is(err, wsgate.ErrNotFound):
			c.sendError(s, id, to+" is not online")
		case err != nil:
			var e *wsgate.Error
			if errors.As(err, &e) {
				c.sendError(s, id, e.Message)
			}
		case !toSelf:
			s.Send(id, wsgate.TextMessage, b) // the sender's copy
		}
	}()
}

func (c *chat) onMessage(s *wsgate.Server, id wsgate.ConnID, typ wsgate.MessageType, data []byte) {
	m := c.members[id]
	if m == nil {
		return
	}
	if typ != wsgate.TextMessage {
		c.sendError(s, id, "send text messages")
		return
	}
	if len(data) > maxText {
		c.sendError(s, id, fmt.Sprintf("a message is at most %d bytes", maxText))
		return
	}
	msg := string(data)
	switch {
	case msg == "":
	case msg[0] != '/':
		c.publish(s, m, "message", &msg)
	case msg == "/who" || strings.HasPrefix(msg, "/who "):
		c.who(s, id, m)
	case strings.HasPrefix(msg, "/msg ") && len(msg) > 5:
		c.direct(s, id, m, msg[5:])
	default:
		c.sendError(s, id, "unknown command: try /who or /msg USER text")
	}
}

func (c *chat) onClose(s *wsgate.Server, id wsgate.ConnID, e wsgate.CloseEvent) {
	m := c.members[id]
	if m == nil {
		return
	}
	delete(c.members, id)
	// Still subscribed during OnClose, the connection is past sending: only
	// the others get the notice.
	c.publish(s, m, "leave", nil)
}
