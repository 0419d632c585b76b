package wsgate

// Presence and session data: calls that may need Redis (cluster.redis) and
// so answer later, on the service thread. Each method here makes the C call
// with a wsg_completion and waits for the answer on the calling goroutine's
// thread: from a handler that answer could never come (the handler holds
// the service thread), so there they return ErrBusy without making the
// call. A handler hands such work to a goroutine (see examples/chat).

/*
#include <stdlib.h>
#include <wsgate/wsgate.h>

// The calls with wsg_completion_callback as their callback: one C call each,
// so Go never holds a C function pointer.
static wsg_status wsgo_topic_presence(wsg_server *s, const char *topic, wsg_completion *c) {
    return wsg_topic_presence(s, topic, wsg_completion_callback, c);
}
static wsg_status wsgo_user_presence(wsg_server *s, const char *user, wsg_completion *c) {
    return wsg_user_presence(s, user, wsg_completion_callback, c);
}
static wsg_status wsgo_session_set(wsg_server *s, const char *key, const void *data, size_t len,
                                   int64_t ttl_ms, wsg_completion *c) {
    return wsg_session_set(s, key, data, len, ttl_ms, wsg_completion_callback, c);
}
static wsg_status wsgo_session_get(wsg_server *s, const char *key, wsg_completion *c) {
    return wsg_session_get(s, key, wsg_completion_callback, c);
}
static wsg_status wsgo_session_delete(wsg_server *s, const char *key, wsg_completion *c) {
    return wsg_session_delete(s, key, wsg_completion_callback, c);
}
*/
import "C"

import (
	"context"
	"fmt"
	"time"
	"unsafe"
)

// Presence is one connection found by TopicPresence or UserPresence.
type Presence struct {
	Conn   ConnID    // usable on any instance of the cluster as it is
	UserID string    // "" when anonymous
	Since  time.Time // the subscription (TopicPresence) or the upgrade (UserPresence)
}

// Node is the node number of the instance holding the connection (the top
// 16 bits of its id; 0 without a cluster).
func (p Presence) Node() int { return int(uint64(p.Conn) >> 48) }

// pollEvery bounds one wait when the context can be cancelled: a cancel is
// seen within this long (a deadline is waited for exactly).
const pollEvery = 50 * time.Millisecond

// await makes one asynchronous call (start, given a fresh completion) and
// waits for its answer, at most until ctx is done; read runs on the result
// (whatever its status) while the completion holds it. The error is the
// call's, the wait's or the result's.
func (s *Server) await(ctx context.Context, op string, start func(*C.wsg_completion) C.wsg_status,
	read func(*C.wsg_result)) error {
	if err := notInHandler(op); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("wsgate: %s: %w (the call was not made)", op, err)
	}
	done, err := s.use(op)
	if err != nil {
		return err
	}
	defer done()
	var c *C.wsg_completion
	if err := check(op, C.wsg_completion_new(&c)); err != nil {
		return err
	}
	// Freed before the answer (a wait that gave up), the completion drops it.
	defer C.wsg_completion_free(c)
	if err := check(op, start(c)); err != nil {
		return err
	}
	for {
		timeout := C.int64_t(-1)
		deadline, hasDeadline := ctx.Deadline()
		if hasDeadline || ctx.Done() != nil {
			slice := pollEvery
			if hasDeadline {
				if left := time.Until(deadline); left < slice {
					slice = left
				}
			}
			if slice < 0 {
				slice = 0
			}
			timeout = C.int64_t((slice + time.Millisecond - 1) / time.Millisecond)
		}
		st := C.wsg_completion_wait(c, timeout)
		if st == C.WSG_OK {
			break
		}
		if st != C.WSG_ETIMEOUT {
			return check(op, st)
		}
		if err := ctx.Err(); err != nil {
			if err == context.DeadlineExceeded {
				return newError(op, ErrTimeout, "no answer before the context's deadline "+
					"(the call goes on; its answer is dropped)")
			}
			return fmt.Errorf("wsgate: %s: %w (the call goes on; its answer is dropped)", op, err)
		}
	}
	r := C.wsg_completion_result(c)
	read(r)
	if st := C.wsg_result_status(r); st != C.WSG_OK {
		return &Error{Op: op, Status: Status(st), Message: C.GoString(C.wsg_result_message(r))}
	}
	return nil
}

// presence copies a result's entries into Go values.
func presence(r *C.wsg_result) []Presence {
	n := int(C.wsg_result_count(r))
	out := make([]Presence, 0, n)
	for i := 0; i < n; i++ {
		var conn C.wsg_conn_id
		var user *C.char
		var since C.int64_t
		if C.wsg_result_presence(r, C.size_t(i), &conn, &user, &since) != C.WSG_OK {
			continue
		}
		out = append(out, Presence{Conn: ConnID(conn), UserID: C.GoString(user), Since: time.UnixMilli(int64(since))})
	}
	return out
}

// TopicPresence lists every connection subscribed to topic on every instance
// of the cluster (this instance's alone without cluster.redis). With
// ErrCluster (Redis down, hung or refusing) the slice still holds this
// instance's entries. ErrBusy from a handler; ErrState when not running.
func (s *Server) TopicPresence(topic string) ([]Presence, error) {
	return s.TopicPresenceContext(context.Background(), topic)
}

// TopicPresenceContext is TopicPresence waiting at most until ctx is done
// (its deadline: ErrTimeout).
func (s *Server) TopicPresenceContext(ctx context.Context, topic string) ([]Presence, error) {
	const op = "TopicPresence"
	t, err := cstring(op, "topic", topic)
	if err != nil {
		return nil, err
	}
	var out []Presence
	err = s.await(ctx, op, func(c *C.wsg_completion) C.wsg_status {
		return C.wsgo_topic_presence(s.ptr, t, c)
	}, func(r *C.wsg_result) { out = presence(r) })
	return out, err
}

// UserPresence lists every open connection of userID on every instance;
// the rules of TopicPresence hold.
func (s *Server) UserPresence(userID string) ([]Presence, error) {
	return s.UserPresenceContext(context.Background(), userID)
}

// UserPresenceContext is UserPresence waiting at most until ctx is done.
func (s *Server) UserPresenceContext(ctx context.Context, userID string) ([]Presence, error) {
	const op = "UserPresence"
	u, err := cstring(op, "user id", userID)
	if err != nil {
		return nil, err
	}
	var out []Presence
	err = s.await(ctx, op, func(c *C.wsg_completion) C.wsg_status {
		return C.wsgo_user_presence(s.ptr, u, c)
	}, func(r *C.wsg_result) { out = presence(r) })
	return out, err
}

// SessionSet stores value (copied) under key (1..255 bytes) for ttl (0:
// the option cluster.session_ttl_ms; rounded up to whole milliseconds),
// shared by every instance (in Redis, or in this instance's memory without
// cluster.redis); a set replaces the value and its TTL. ErrLimit: larger
// than cluster.session_max_bytes; ErrCluster: Redis failed; ErrBusy from a
// handler.
func (s *Server) SessionSet(key string, value []byte, ttl time.Duration) error {
	return s.SessionSetContext(context.Background(), key, value, ttl)
}

// SessionSetContext is SessionSet waiting at most until ctx is done.
func (s *Server) SessionSetContext(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	const op = "SessionSet"
	k, err := cstring(op, "session key", key)
	if err != nil {
		return err
	}
	ms := int64(ttl / time.Millisecond)
	if ttl > 0 && ttl%time.Millisecond != 0 {
		ms++ // 0 would mean "the default"
	}
	return s.await(ctx, op, func(c *C.wsg_completion) C.wsg_status {
		return C.wsgo_session_set(s.ptr, k, bytesPtr(value), C.size_t(len(value)), C.int64_t(ms), c)
	}, func(*C.wsg_result) {})
}

// SessionGet reads the value under key: ErrNotFound when there is none (never
// set, deleted or expired). The slice is the caller's.
func (s *Server) SessionGet(key string) ([]byte, error) {
	return s.SessionGetContext(context.Background(), key)
}

// SessionGetContext is SessionGet waiting at most until ctx is done.
func (s *Server) SessionGetContext(ctx context.Context, key string) ([]byte, error) {
	const op = "SessionGet"
	k, err := cstring(op, "session key", key)
	if err != nil {
		return nil, err
	}
	var out []byte
	err = s.await(ctx, op, func(c *C.wsg_completion) C.wsg_status {
		return C.wsgo_session_get(s.ptr, k, c)
	}, func(r *C.wsg_result) {
		var data unsafe.Pointer
		var n C.size_t
		if C.wsg_result_value(r, &data, &n) == C.WSG_OK {
			out = C.GoBytes(data, C.int(n))
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SessionDelete removes key (nil also when it was absent).
func (s *Server) SessionDelete(key string) error {
	return s.SessionDeleteContext(context.Background(), key)
}

// SessionDeleteContext is SessionDelete waiting at most until ctx is done.
func (s *Server) SessionDeleteContext(ctx context.Context, key string) error {
	const op = "SessionDelete"
	k, err := cstring(op, "session key", key)
	if err != nil {
		return err
	}
	return s.await(ctx, op, func(c *C.wsg_completion) C.wsg_status {
		return C.wsgo_session_delete(s.ptr, k, c)
	}, func(*C.wsg_result) {})
}
