package wsgate

/*
#include <wsgate/wsgate.h>
*/
import "C"

import "unsafe"

// Every call here is safe from any goroutine and from handlers. Payloads
// are copied by the core before the call returns: the caller may reuse
// data at once. A send from another goroutine is queued to the service
// thread; one from a handler is handled at once.

// Send queues one message to c, written after the messages before it.
// ErrNotFound: c is gone; ErrClosed: c is closing; ErrInvalid: bad type or
// a message bigger than limits.max_queue_bytes. A message that overflows
// c's queue meets its queue policy later (the call has returned nil).
func (s *Server) Send(c ConnID, typ MessageType, data []byte) error {
	done, err := s.use("Send")
	if err != nil {
		return err
	}
	defer done()
	return check("Send", C.wsg_conn_send(s.ptr, C.wsg_conn_id(c), C.wsg_msg_type(typ), bytesPtr(data), C.size_t(len(data))))
}

// CloseConn closes c with code (1000..1003, 1007..1009, 1011..1014 or
// 3000..4999) and a UTF-8 reason of at most 123 bytes, after the messages
// already queued; OnClose reports CauseApp.
func (s *Server) CloseConn(c ConnID, code int, reason string) error {
	done, err := s.use("CloseConn")
	if err != nil {
		return err
	}
	defer done()
	r, err := cstring("CloseConn", "close reason", reason)
	if err != nil {
		return err
	}
	return check("CloseConn", C.wsg_conn_close(s.ptr, C.wsg_conn_id(c), C.int(code), r))
}

// Subscribe subscribes c to topic (1..255 bytes of UTF-8); twice is harmless.
func (s *Server) Subscribe(c ConnID, topic string) error {
	done, err := s.use("Subscribe")
	if err != nil {
		return err
	}
	defer done()
	t, err := cstring("Subscribe", "topic", topic)
	if err != nil {
		return err
	}
	return check("Subscribe", C.wsg_conn_subscribe(s.ptr, C.wsg_conn_id(c), t))
}

// Unsubscribe ends c's subscription to topic (harmless when there is none).
func (s *Server) Unsubscribe(c ConnID, topic string) error {
	done, err := s.use("Unsubscribe")
	if err != nil {
		return err
	}
	defer done()
	t, err := cstring("Unsubscribe", "topic", topic)
	if err != nil {
		return err
	}
	return check("Unsubscribe", C.wsg_conn_unsubscribe(s.ptr, C.wsg_conn_id(c), t))
}

// Publish sends one message to every subscriber of topic (framed once). A
// topic nobody follows is not an error. ErrState when not running.
func (s *Server) Publish(topic string, typ MessageType, data []byte) error {
	done, err := s.use("Publish")
	if err != nil {
		return err
	}
	defer done()
	t, err := cstring("Publish", "topic", topic)
	if err != nil {
		return err
	}
	return check("Publish", C.wsg_server_publish(s.ptr, t, C.wsg_msg_type(typ), bytesPtr(data), C.size_t(len(data))))
}

// Broadcast sends one message to every open connection (framed once).
func (s *Server) Broadcast(typ MessageType, data []byte) error {
	done, err := s.use("Broadcast")
	if err != nil {
		return err
	}
	defer done()
	return check("Broadcast", C.wsg_server_broadcast(s.ptr, C.wsg_msg_type(typ), bytesPtr(data), C.size_t(len(data))))
}

// BroadcastExcept is Broadcast to every open connection but except (0: none).
func (s *Server) BroadcastExcept(except ConnID, typ MessageType, data []byte) error {
	done, err := s.use("BroadcastExcept")
	if err != nil {
		return err
	}
	defer done()
	return check("BroadcastExcept", C.wsg_server_broadcast_except(s.ptr, C.wsg_conn_id(except), C.wsg_msg_type(typ),
		bytesPtr(data), C.size_t(len(data))))
}

// SendMany sends one message to each of ids, framed once; gone or closing
// ids are skipped.
func (s *Server) SendMany(ids []ConnID, typ MessageType, data []byte) error {
	done, err := s.use("SendMany")
	if err != nil {
		return err
	}
	defer done()
	var p *C.wsg_conn_id
	if len(ids) > 0 {
		// ConnID and wsg_conn_id are both 64-bit unsigned integers.
		p = (*C.wsg_conn_id)(unsafe.Pointer(&ids[0]))
	}
	return check("SendMany", C.wsg_conn_send_many(s.ptr, p, C.size_t(len(ids)), C.wsg_msg_type(typ),
		bytesPtr(data), C.size_t(len(data))))
}

// UserSend sends one message to every open connection of an authenticated
// user (the JWT's user id or the one OnAuth accepted). ErrNotFound: the
// user has no open connection.
func (s *Server) UserSend(user string, typ MessageType, data []byte) error {
	done, err := s.use("UserSend")
	if err != nil {
		return err
	}
	defer done()
	u, err := cstring("UserSend", "user id", user)
	if err != nil {
		return err
	}
	return check("UserSend", C.wsg_user_send(s.ptr, u, C.wsg_msg_type(typ), bytesPtr(data), C.size_t(len(data))))
}

// UserClose closes every open connection of user, as CloseConn.
func (s *Server) UserClose(user string, code int, reason string) error {
	done, err := s.use("UserClose")
	if err != nil {
		return err
	}
	defer done()
	u, err := cstring("UserClose", "user id", user)
	if err != nil {
		return err
	}
	r, err := cstring("UserClose", "close reason", reason)
	if err != nil {
		return err
	}
	return check("UserClose", C.wsg_user_close(s.ptr, u, C.int(code), r))
}

// idList grows a buffer until one "capacity, count" call fits in it.
func idList(op string, call func(ids *C.wsg_conn_id, capacity C.size_t, count *C.size_t) C.wsg_status) ([]ConnID, error) {
	ids := make([]ConnID, 16)
	for {
		var n C.size_t
		if err := check(op, call((*C.wsg_conn_id)(unsafe.Pointer(&ids[0])), C.size_t(len(ids)), &n)); err != nil {
			return nil, err
		}
		if int(n) <= len(ids) {
			return ids[:n:n], nil
		}
		ids = make([]ConnID, int(n)+int(n)/4+16)
	}
}

// UserConnIDs is a snapshot of user's open connections.
func (s *Server) UserConnIDs(user string) ([]ConnID, error) {
	done, err := s.use("UserConnIDs")
	if err != nil {
		return nil, err
	}
	defer done()
	u, err := cstring("UserConnIDs", "user id", user)
	if err != nil {
		return nil, err
	}
	return idList("UserConnIDs", func(ids *C.wsg_conn_id, capacity C.size_t, count *C.size_t) C.wsg_status {
		return C.wsg_user_conn_ids(s.ptr, u, ids, capacity, count)
	})
}

// TopicSubscribers is a snapshot of topic's subscribers (none: empty).
func (s *Server) TopicSubscribers(topic string) ([]ConnID, error) {
	done, err := s.use("TopicSubscribers")
	if err != nil {
		return nil, err
	}
	defer done()
	t, err := cstring("TopicSubscribers", "topic", topic)
	if err != nil {
		return nil, err
	}
	return idList("TopicSubscribers", func(ids *C.wsg_conn_id, capacity C.size_t, count *C.size_t) C.wsg_status {
		return C.wsg_topic_subscribers(s.ptr, t, ids, capacity, count)
	})
}

// ConnIDs is a snapshot of the open connections.
func (s *Server) ConnIDs() ([]ConnID, error) {
	done, err := s.use("ConnIDs")
	if err != nil {
		return nil, err
	}
	defer done()
	return idList("ConnIDs", func(ids *C.wsg_conn_id, capacity C.size_t, count *C.size_t) C.wsg_status {
		return C.wsg_server_conn_ids(s.ptr, ids, capacity, count)
	})
}

// SetQueuePolicy gives c its own queue policy instead of limits.queue_policy.
func (s *Server) SetQueuePolicy(c ConnID, p QueuePolicy) error {
	done, err := s.use("SetQueuePolicy")
	if err != nil {
		return err
	}
	defer done()
	return check("SetQueuePolicy", C.wsg_conn_set_queue_policy(s.ptr, C.wsg_conn_id(c), C.wsg_queue_policy(p)))
}

// SetConnTimeout overrides one heartbeat option for c: key is one of
// heartbeat.ping_interval_ms, pong_wait_ms, write_wait_ms, idle_timeout_ms
// or close_wait_ms, value in milliseconds within that option's range.
func (s *Server) SetConnTimeout(c ConnID, key string, value int64) error {
	done, err := s.use("SetConnTimeout")
	if err != nil {
		return err
	}
	defer done()
	k, err := cstring("SetConnTimeout", "timeout key", key)
	if err != nil {
		return err
	}
	return check("SetConnTimeout", C.wsg_conn_set_timeout(s.ptr, C.wsg_conn_id(c), k, C.int64_t(value)))
}
