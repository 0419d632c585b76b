package wsgate

// The Go side of the trampolines (trampolines.c): wsgate calls them on its
// service thread, with the Server's cgo.Handle as the user pointer. No Go
// pointer is ever stored in C; payloads and strings are copied into Go
// memory before a handler sees them.

/*
#include <stdint.h>
#include <wsgate/wsgate.h>
#include "trampolines.h"
*/
import "C"

import (
	"log"
	"runtime/cgo"
	"runtime/debug"
	"unsafe"
)

func serverOf(h C.uintptr_t) *Server { return cgo.Handle(h).Value().(*Server) }

// recovered reports a handler's panic, after which the server keeps serving:
// a panic must not unwind into C (it would crash the process), and one bad
// message should not take every connection down.
func (s *Server) recovered(handler string, v any) {
	if s.opts.OnPanic != nil {
		defer func() {
			if r := recover(); r != nil {
				log.Printf("wsgate: the OnPanic handler panicked: %v", r)
			}
		}()
		s.opts.OnPanic(s, handler, v)
		return
	}
	log.Printf("wsgate: %s handler panicked (recovered, the server keeps serving): %v\n%s", handler, v, debug.Stack())
}

//export wsgoOpen
func wsgoOpen(h C.uintptr_t, conn C.wsg_conn_id) {
	s := serverOf(h)
	defer func() {
		if r := recover(); r != nil {
			s.recovered("OnOpen", r)
		}
	}()
	s.opts.OnOpen(s, ConnID(conn))
}

//export wsgoMessage
func wsgoMessage(h C.uintptr_t, conn C.wsg_conn_id, typ C.int, data unsafe.Pointer, n C.size_t) {
	s := serverOf(h)
	defer func() {
		if r := recover(); r != nil {
			s.recovered("OnMessage", r)
		}
	}()
	// Copied: the handler may keep the slice, and C frees its buffer on return.
	payload := make([]byte, int(n))
	if n > 0 {
		copy(payload, unsafe.Slice((*byte)(data), int(n)))
	}
	s.opts.OnMessage(s, ConnID(conn), MessageType(typ), payload)
}

//export wsgoClose
func wsgoClose(h C.uintptr_t, conn C.wsg_conn_id, code C.int, reason *C.char, n C.size_t, cause, advice C.int) {
	s := serverOf(h)
	defer func() {
		if r := recover(); r != nil {
			s.recovered("OnClose", r)
		}
	}()
	ev := CloseEvent{
		Code:   int(code),
		Reason: C.GoStringN(reason, C.int(n)),
		Cause:  Cause(cause),
		Advice: Advice(advice),
	}
	s.opts.OnClose(s, ConnID(conn), ev)
}

//export wsgoLog
func wsgoLog(h C.uintptr_t, level C.int, event *C.char, json *C.char, n C.size_t) {
	s := serverOf(h)
	defer func() {
		if r := recover(); r != nil {
			s.recovered("OnLog", r)
		}
	}()
	s.opts.OnLog(s, LogEvent{
		Level: LogLevel(level),
		Event: C.GoString(event),
		JSON:  C.GoBytes(unsafe.Pointer(json), C.int(n)),
	})
}

//export wsgoDrain
func wsgoDrain(h C.uintptr_t, conn C.wsg_conn_id, queued C.size_t) {
	s := serverOf(h)
	defer func() {
		if r := recover(); r != nil {
			s.recovered("OnDrain", r)
		}
	}()
	s.opts.OnDrain(s, ConnID(conn), int(queued))
}

//export wsgoAuth
func wsgoAuth(h C.uintptr_t, req *C.wsg_auth_request) {
	s := serverOf(h)
	r := &AuthRequest{req: req}
	defer r.done.Store(true)
	defer func() {
		if v := recover(); v != nil {
			// Fail closed: whatever the handler decided before it
			// panicked, it did not finish deciding.
			reason := []byte("the OnAuth handler panicked\x00")
			C.wsg_auth_refuse(req, 401, (*C.char)(unsafe.Pointer(&reason[0])))
			s.recovered("OnAuth", v)
		}
	}()
	s.opts.OnAuth(s, r)
}

//export wsgoHistory
func wsgoHistory(h C.uintptr_t, topic *C.char, epoch, offset C.uint64_t, msg *C.wsg_history_message) {
	s := serverOf(h)
	fn := s.history.Load()
	if fn == nil {
		return // registered in C, not yet stored here: the payload goes out as published
	}
	m := &HistoryMessage{msg: msg}
	defer m.done.Store(true)
	defer func() {
		if r := recover(); r != nil {
			s.recovered("OnHistory", r)
		}
	}()
	(*fn)(C.GoString(topic), Position{Epoch: uint64(epoch), Offset: uint64(offset)}, m)
}

// answer is what an asynchronous call with a Go callback (SubscribeFromFunc)
// hands C as its user pointer, through a cgo.Handle: read runs once, on the
// service thread, with the result (borrowed for the call).
type answer struct {
	s       *Server
	handler string // the method's name, for OnPanic
	read    func(r *C.wsg_result)
}

//export wsgoResult
func wsgoResult(h C.uintptr_t, r *C.wsg_result) {
	handle := cgo.Handle(h)
	a := handle.Value().(*answer)
	handle.Delete() // the core calls back once
	defer func() {
		if v := recover(); v != nil {
			a.s.recovered(a.handler, v)
		}
	}()
	a.read(r)
}
