package wsgate

// History and recovery: positions, SubscribeFrom and the OnHistory hook.
// Topics matching the option cluster.history_topics keep their last
// messages (in Redis with cluster.redis, in this instance's memory without),
// each with a Position; a client that comes back is subscribed from the
// last position it saw and gets what it missed, then the live messages.

/*
#include <stdlib.h>
#include <wsgate/wsgate.h>
#include "trampolines.h"

static wsg_status wsgo_subscribe_from(wsg_server *s, wsg_conn_id conn, const char *topic,
                                      const wsg_position *from, wsg_completion *c) {
    return wsg_conn_subscribe_from(s, conn, topic, from, wsg_completion_callback, c);
}
*/
import "C"

import (
	"context"
	"runtime"
	"runtime/cgo"
	"sync/atomic"
	"unsafe"
)

// Position is a message's place in a topic's history: Epoch names the
// history (it changes when the history is lost: Redis restarted empty, or
// cluster.history_ttl_ms passed with no publish), Offset counts its
// messages 1, 2, 3... The zero Position means "none" (before the first
// message). As text it is "EPOCH-OFFSET" (String, ParsePosition), what a
// client hands back, say in its URL's query.
type Position struct {
	Epoch, Offset uint64
}

// String is the position as text, "EPOCH-OFFSET" in decimal
// (wsg_position_format).
func (p Position) String() string {
	var buf [C.WSG_POSITION_TEXT_MAX]C.char
	cp := C.wsg_position{epoch: C.uint64_t(p.Epoch), offset: C.uint64_t(p.Offset)}
	if C.wsg_position_format(&cp, &buf[0], C.size_t(len(buf))) != C.WSG_OK {
		return "" // cannot happen: WSG_POSITION_TEXT_MAX always suffices
	}
	return C.GoString(&buf[0])
}

// ParsePosition reads the text of Position.String (wsg_position_parse).
// ErrInvalid, with the core's message, for anything else ("", "12",
// "1-2-3", a sign, a number past 64 bits...).
func ParsePosition(text string) (Position, error) {
	const op = "ParsePosition"
	t, err := cstring(op, "position text", text)
	if err != nil {
		return Position{}, err
	}
	lock()
	defer runtime.UnlockOSThread()
	var p C.wsg_position
	if err := check(op, C.wsg_position_parse(t, &p)); err != nil {
		return Position{}, err
	}
	return Position{Epoch: uint64(p.epoch), Offset: uint64(p.offset)}, nil
}

// SubscribeFrom subscribes c to a history topic and gives it every message
// after from (nil: none from the past), then the live ones, with no gap
// and no duplicate. The subscription happens whatever the answer. It
// returns the position of the last message replayed, or the topic's
// current one when nothing was missed (the zero Position before the
// topic's first message).
//
// Errors: ErrGone when from is older than the history keeps, ahead of it
// or of another epoch (nothing was replayed: resync the client your own
// way; c still gets the live messages); ErrCluster when Redis is down (live
// messages only); ErrNotFound when c is gone (or closed meanwhile);
// ErrInvalid for a bad topic, a topic without history (see
// cluster.history_topics) or another instance's connection; ErrState when
// the server is not running. Like the presence calls it waits for an
// answer that comes from the service thread, so from a handler it returns
// ErrBusy without subscribing: a handler calls SubscribeFromFunc instead.
func (s *Server) SubscribeFrom(c ConnID, topic string, from *Position) (Position, error) {
	return s.SubscribeFromContext(context.Background(), c, topic, from)
}

// SubscribeFromContext is SubscribeFrom waiting at most until ctx is done
// (its deadline: ErrTimeout). A wait that gives up does not undo the call:
// c is subscribed and gets the missed messages anyway.
func (s *Server) SubscribeFromContext(ctx context.Context, c ConnID, topic string, from *Position) (Position, error) {
	const op = "SubscribeFrom"
	t, err := cstring(op, "topic", topic)
	if err != nil {
		return Position{}, err
	}
	var fromC *C.wsg_position
	if from != nil {
		// Copied by the core during the call.
		fromC = &C.wsg_position{epoch: C.uint64_t(from.Epoch), offset: C.uint64_t(from.Offset)}
	}
	var out Position
	err = s.await(ctx, op, func(comp *C.wsg_completion) C.wsg_status {
		return C.wsgo_subscribe_from(s.ptr, C.wsg_conn_id(c), t, fromC, comp)
	}, func(r *C.wsg_result) {
		var p C.wsg_position
		if C.wsg_result_position(r, &p) == C.WSG_OK {
			out = Position{Epoch: uint64(p.epoch), Offset: uint64(p.offset)}
		}
	})
	if err != nil {
		return Position{}, err
	}
	return out, nil
}

// SubscribeFromFunc is SubscribeFrom for handlers: it does not wait. It
// subscribes c at once (from a handler, a Publish later in the same handler
// reaches c, after the replay: live messages wait for the missed ones) and
// returns the call's own error: ErrInvalid for a bad topic, a topic without
// history (see cluster.history_topics) or another instance's connection;
// ErrNotFound for a stale id; ErrClosed, ErrState. Else fn (if not nil)
// runs later exactly once, never inside this call, on the service thread
// like a handler (it must return quickly and may use the Server as handlers do; a
// panic is recovered and goes to OnPanic as "SubscribeFromFunc"), with the
// position SubscribeFrom returns, or its error: ErrGone (from is older than
// the history keeps, ahead of it or of another epoch: nothing replayed),
// ErrCluster (Redis down: live messages only), ErrNotFound (c closed
// meanwhile), ErrState (the server stopped first). When the call returns an
// error fn never runs. fn may be nil: the subscription and the replay
// happen all the same.
func (s *Server) SubscribeFromFunc(c ConnID, topic string, from *Position, fn func(Position, error)) error {
	const op = "SubscribeFromFunc"
	t, err := cstring(op, "topic", topic)
	if err != nil {
		return err
	}
	var fromC *C.wsg_position
	if from != nil {
		// Copied by the core during the call.
		fromC = &C.wsg_position{epoch: C.uint64_t(from.Epoch), offset: C.uint64_t(from.Offset)}
	}
	done, err := s.use(op)
	if err != nil {
		return err
	}
	defer done()
	var h cgo.Handle // 0 (no callback) when fn is nil
	if fn != nil {
		h = cgo.NewHandle(&answer{s: s, handler: op, read: func(r *C.wsg_result) {
			if st := C.wsg_result_status(r); st != C.WSG_OK {
				fn(Position{}, &Error{Op: op, Status: Status(st), Message: C.GoString(C.wsg_result_message(r))})
				return
			}
			var p C.wsg_position
			C.wsg_result_position(r, &p)
			fn(Position{Epoch: uint64(p.epoch), Offset: uint64(p.offset)}, nil)
		}})
	}
	if err := check(op, C.wsgo_subscribe_from_fn(s.ptr, C.wsg_conn_id(c), t, fromC, C.uintptr_t(h))); err != nil {
		if fn != nil {
			h.Delete() // never called back
		}
		return err
	}
	return nil
}

// HistoryMessage is a history topic's message on its way to this
// instance's subscribers, given to the OnHistory hook. It is valid only
// during that hook call and only on its goroutine: do not keep it (or use
// it from another goroutine); afterwards Payload returns nothing and Set
// ErrState.
type HistoryMessage struct {
	msg  *C.wsg_history_message
	done atomic.Bool // set when the hook call returned
}

// here pins the goroutine to its thread and checks that it is the hook
// call's own; unlock with runtime.UnlockOSThread when err is nil.
func (m *HistoryMessage) here(op string) error {
	if m.done.Load() {
		return newError(op, ErrState, "the HistoryMessage is no longer valid: use it only during its OnHistory call")
	}
	lock()
	if C.wsgo_history_here(m.msg) == 0 {
		runtime.UnlockOSThread()
		return newError(op, ErrState, "a HistoryMessage can only be used by the OnHistory call that received it, on its goroutine")
	}
	return nil
}

// Payload is the message as published (Set does not change it): its type
// and a copy of its data, which the caller may keep. Outside its hook call:
// 0 and nil.
func (m *HistoryMessage) Payload() (MessageType, []byte) {
	if m.here("Payload") != nil {
		return 0, nil
	}
	defer runtime.UnlockOSThread()
	var typ C.wsg_msg_type
	var data unsafe.Pointer
	var n C.size_t
	if C.wsg_history_message_payload(m.msg, &typ, &data, &n) != C.WSG_OK {
		return 0, nil
	}
	return MessageType(typ), C.GoBytes(data, C.int(n))
}

// Set replaces what the subscribers get (copied; the type stays the
// published one), say the payload with its position embedded. ErrInvalid:
// invalid UTF-8 for a text message, or larger than limits.max_queue_bytes;
// ErrState outside the hook call.
func (m *HistoryMessage) Set(data []byte) error {
	if err := m.here("Set"); err != nil {
		return err
	}
	defer runtime.UnlockOSThread()
	return check("Set", C.wsg_history_message_set(m.msg, bytesPtr(data), C.size_t(len(data))))
}

type historyHook func(topic string, pos Position, msg *HistoryMessage)

// OnHistory registers the history hook: it sees a history topic's message
// with its position before this instance's subscribers get it, and may
// replace what they get with msg.Set. It runs once per live message on this
// instance, and again for each connection the message is replayed to
// (SubscribeFrom), so it must shape the same message the same way; it must
// not publish to history topics. It runs on the service thread like the
// other handlers (it must return quickly; a panic is recovered and the
// message goes out as it stands). msg must not be kept after the call.
// With Redis down a publish is delivered locally at once and the hook sees
// the zero Position. nil removes the hook. Only before the server listens
// (Listen, Start or Run): ErrState after.
func (s *Server) OnHistory(fn func(topic string, pos Position, msg *HistoryMessage)) error {
	const op = "OnHistory"
	done, err := s.use(op)
	if err != nil {
		return err
	}
	defer done()
	s.historyMu.Lock()
	defer s.historyMu.Unlock()
	on := C.int(0)
	if fn != nil {
		on = 1
	}
	if err := check(op, C.wsgo_register_history(s.ptr, C.uintptr_t(s.handle), on)); err != nil {
		return err
	}
	if fn == nil {
		s.history.Store(nil)
	} else {
		h := historyHook(fn)
		s.history.Store(&h)
	}
	return nil
}
