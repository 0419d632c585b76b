// Package wsgate is the Go binding of wsgate, an embeddable WebSocket
// server library: a thin layer over its C ABI (wsgate.h) that translates
// types, threads and errors, and adds no logic of its own.
//
// # Building
//
// The package links the installed libwsgate through pkg-config
// (#cgo pkg-config: wsgate): set PKG_CONFIG_PATH to PREFIX/lib/pkgconfig
// for a prefix the system does not search, and LD_LIBRARY_PATH (or an
// rpath) so the program finds libwsgate.so.0 at run time. It needs cgo and
// nothing beyond the standard library (Go 1.19 or later).
//
// # Servers
//
// NewServer takes Options: wsgate's options by their dotted names (the
// README's option table, e.g. "listen.port", "limits.max_message_bytes",
// "auth.mode") and the handlers. Run(ctx) serves until ctx is done and then
// stops gracefully, or drains first with the option server.drain_ms; Start
// serves in the background until Stop, Drain or Close. Close frees the
// server; call it when done.
//
// # Threads
//
// wsgate runs each server's network loop on one service thread: a thread
// of its own after Start, the thread of the goroutine calling Run. Every
// handler runs there, one at a time, in the order of the events, so state
// that only handlers touch needs no lock. Handlers must return quickly: a
// slow handler delays every connection of the server. Hand long work to
// other goroutines (a channel, a worker pool); they answer with Send,
// Publish and the rest, which are safe from any goroutine. The binding
// starts no goroutine per connection (one per Run, watching its context).
//
// From a handler every method works except Stop, Drain and Close, which
// wait for the service thread and so return ErrBusy there; RequestStop
// asks for the stop without waiting. The same holds for presence and
// session data (TopicPresence, UserPresence, SessionSet, SessionGet,
// SessionDelete): they wait for an answer that comes from the service
// thread, so a handler calls them from a goroutine of its own. For
// SubscribeFrom a handler calls SubscribeFromFunc, whose callback runs
// later on the service thread. A send from a handler is queued at
// once; from another goroutine it is passed to the service thread. A
// handler that panics is recovered (Options.OnPanic, or the standard
// logger) and the server keeps serving; a panicking OnAuth refuses the
// request with 401.
//
// # History
//
// Topics named by the option cluster.history_topics keep their last
// messages, each with a Position. SubscribeFrom subscribes a connection
// from the position of the last message its client saw: it gets what it
// missed, then the live messages (ErrGone when that position is no longer
// kept). OnHistory, set before the server listens, shapes each history
// message before its subscribers get it, say to tell them its position.
//
// # Memory
//
// Payloads are copied at the boundary: a handler's data slice is its own,
// and the slice given to Send, Publish and the other send calls may be
// reused as soon as the call returns. No Go pointer is kept by C: handlers
// are reached through a runtime/cgo.Handle.
//
// # Errors
//
// A failed call returns an *Error holding the operation, the Status and
// the core's message (which names the option, connection or system call
// involved). It unwraps to its Status, so the sentinels compare with
// errors.Is:
//
//	if err := s.Send(c, wsgate.TextMessage, b); errors.Is(err, wsgate.ErrNotFound) {
//		// the connection is gone
//	}
package wsgate
