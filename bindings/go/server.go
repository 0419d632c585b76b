package wsgate

/*
#include <stdlib.h>
#include <wsgate/wsgate.h>
#include "trampolines.h"
*/
import "C"

import (
	"context"
	"runtime"
	"runtime/cgo"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Options configure a Server: wsgate's options by their dotted names (the
// README's option table), and the handlers.
//
// Handlers run on wsgate's service thread, one at a time, in the order of
// the events: they must return quickly (no blocking I/O, no waiting for
// other goroutines that may wait for the server). Hand long work to a
// goroutine or a channel. From a handler every call of the Server works
// (Send, Publish, CloseConn, ConnInfo, ...) except Stop, Drain, Close and
// the presence, session and SubscribeFrom calls, which wait for the
// service thread and return ErrBusy there (RequestStop works;
// SubscribeFromFunc is SubscribeFrom for handlers). A handler that panics is recovered: the panic goes to OnPanic (or
// the standard logger) and the server keeps serving; a panicking OnAuth
// refuses the request with 401. Handlers are fixed for the Server's life
// (the history hook is set with Server.OnHistory, before the server listens).
type Options struct {
	// Config sets options by dotted name, e.g. {"listen.port": "0",
	// "server.drain_ms": "2000"}, parsed as wsg_config_set_from_string
	// does (integers in decimal, bools as true/false/1/0/yes/no/on/off).
	// An unknown key or a bad value fails NewServer with ErrInvalid and the
	// core's message (which names the key, the range or the closest name).
	Config map[string]string

	// OnOpen: a connection completed the upgrade.
	OnOpen func(s *Server, c ConnID)
	// OnMessage: a whole message arrived. data is the handler's own copy.
	OnMessage func(s *Server, c ConnID, typ MessageType, data []byte)
	// OnClose: a connection ended; called exactly once for each opened
	// connection. ConnInfo still answers for c during the call.
	OnClose func(s *Server, c ConnID, e CloseEvent)
	// OnLog replaces the default log sink (JSON lines on stderr). It may
	// also run on the goroutine calling Listen, Start, Run or Stop.
	OnLog func(s *Server, e LogEvent)
	// OnDrain: c's send queue fell back to limits.queue_low_water_bytes
	// after passing limits.queue_high_water_bytes; queued bytes remain.
	OnDrain func(s *Server, c ConnID, queued int)
	// OnAuth decides an upgrade request when auth.mode is callback or
	// jwt+callback: call r.Accept or r.Refuse before returning (deciding
	// nothing refuses with 401). r is valid only during the call.
	OnAuth func(s *Server, r *AuthRequest)
	// OnPanic receives a handler's recovered panic (handler is "OnOpen",
	// "OnMessage", ...). Nil logs it with its stack through package log.
	OnPanic func(s *Server, handler string, v any)
}

// A Server is one wsgate server. Its methods are safe from any goroutine
// and from handlers (but see Options for Stop, Drain and Close there).
// Call Close when done: it stops the server and frees it.
type Server struct {
	ptr    *C.wsg_server
	handle cgo.Handle
	opts   Options
	gate   *gate

	closeMu sync.Mutex
	closed  bool

	// The OnHistory hook: set before the server listens, read by the
	// trampoline on the service thread (atomic: the race detector cannot
	// see the C thread's start as an ordering). historyMu keeps the C
	// registration and this pointer in step.
	historyMu sync.Mutex
	history   atomic.Pointer[historyHook]
}

// NewServer creates a server from opts. Nothing is bound yet (Listen,
// Start or Run bind), but every option is checked and TLS files are loaded.
func NewServer(opts Options) (*Server, error) {
	lock()
	defer runtime.UnlockOSThread()
	var cfg *C.wsg_config
	if err := check("NewServer", C.wsg_config_new(&cfg)); err != nil {
		return nil, err
	}
	defer C.wsg_config_free(cfg)
	// Sorted: the first bad key reported is the same on every run.
	keys := make([]string, 0, len(opts.Config))
	for k := range opts.Config {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		a, err := cstring("NewServer", "option "+k, k+"="+opts.Config[k])
		if err != nil {
			return nil, err
		}
		if err := check("NewServer", C.wsg_config_set_from_string(cfg, a)); err != nil {
			return nil, err
		}
	}
	s := &Server{opts: opts, gate: newGate()}
	if err := check("NewServer", C.wsg_server_new(&s.ptr, cfg)); err != nil {
		return nil, err
	}
	var which C.uint
	for _, h := range []struct {
		set  bool
		flag C.uint
	}{
		{opts.OnOpen != nil, C.WSGO_OPEN}, {opts.OnMessage != nil, C.WSGO_MESSAGE},
		{opts.OnClose != nil, C.WSGO_CLOSE}, {opts.OnLog != nil, C.WSGO_LOG},
		{opts.OnDrain != nil, C.WSGO_DRAIN}, {opts.OnAuth != nil, C.WSGO_AUTH},
	} {
		if h.set {
			which |= h.flag
		}
	}
	s.handle = cgo.NewHandle(s)
	if err := check("NewServer", C.wsgo_register(s.ptr, C.uintptr_t(s.handle), which)); err != nil {
		C.wsg_server_free(s.ptr)
		s.handle.Delete()
		return nil, err
	}
	return s, nil
}

// use enters the gate: the C server stays valid until done is called.
func (s *Server) use(op string) (done func(), err error) {
	if !s.gate.enter() {
		return nil, newError(op, ErrClosed, "the Server is closed")
	}
	lock()
	return func() {
		runtime.UnlockOSThread()
		s.gate.leave()
	}, nil
}

// notInHandler refuses the calls that wait for the service thread when
// made from a handler (on any thread: OnLog may run inside Stop), instead
// of deadlocking.
func notInHandler(op string) error {
	if C.wsgo_in_handler() != 0 {
		return newError(op, ErrBusy, op+" cannot be called from a handler: it waits for the service thread "+
			"(use RequestStop there)")
	}
	return nil
}

// AddPage serves body at path from the server's own port (say, the page
// whose script opens the WebSocket): GET gets 200 with contentType. Before
// the server listens. The body is copied.
func (s *Server) AddPage(path, contentType string, body []byte) error {
	done, err := s.use("AddPage")
	if err != nil {
		return err
	}
	defer done()
	p, err := cstring("AddPage", "page path", path)
	if err != nil {
		return err
	}
	ct, err := cstring("AddPage", "content type", contentType)
	if err != nil {
		return err
	}
	return check("AddPage", C.wsg_server_add_page(s.ptr, p, ct, bytesPtr(body), C.size_t(len(body))))
}

// Listen binds the listening socket without serving yet, so Port is known
// before Start or Run. Optional.
func (s *Server) Listen() error {
	done, err := s.use("Listen")
	if err != nil {
		return err
	}
	defer done()
	return check("Listen", C.wsg_server_listen(s.ptr))
}

// Start listens (if not yet) and serves on a new service thread; it
// returns at once. Stop, Drain or Close end it.
func (s *Server) Start() error {
	done, err := s.use("Start")
	if err != nil {
		return err
	}
	defer done()
	return check("Start", C.wsgo_start(s.ptr))
}

// Run listens (if not yet) and serves on the calling goroutine's thread
// until ctx is done or Stop, Drain or RequestStop is called, and returns
// once the graceful stop is over: nil after such a stop, an error when the
// server could not listen or run. When ctx is done the server stops as
// RequestStop does: with the option server.drain_ms set, its connections
// are first closed with 1012 over that long (a drain), else at once with
// 1001.
func (s *Server) Run(ctx context.Context) error {
	if err := notInHandler("Run"); err != nil {
		return err
	}
	done, err := s.use("Run")
	if err != nil {
		return err
	}
	defer done()
	// mu and finished keep the watcher from asking a stop after Run has
	// returned: the core keeps such a request for the next Start or Run.
	var mu sync.Mutex
	finished := false
	returned := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			mu.Lock()
			if !finished {
				C.wsg_server_request_stop(s.ptr)
			}
			mu.Unlock()
		case <-returned:
		}
	}()
	st := C.wsg_server_run(s.ptr)
	err = check("Run", st)
	mu.Lock()
	finished = true
	mu.Unlock()
	close(returned)
	return err
}

// Stop stops gracefully: new upgrades get 503, every client gets close
// 1001 after what is queued for it, and Stop returns once the close
// handshakes are done (server.shutdown_timeout_ms at most) and the port is
// released. The server can be started again. ErrBusy from a handler.
func (s *Server) Stop() error {
	if err := notInHandler("Stop"); err != nil {
		return err
	}
	done, err := s.use("Stop")
	if err != nil {
		return err
	}
	defer done()
	return check("Stop", C.wsg_server_stop(s.ptr))
}

// Drain is Stop spread over d for rolling restarts: at once the server is
// not ready and refuses new upgrades (503); its connections are closed with
// 1012 at a steady pace over d; then it stops. Returns once stopped.
// ErrBusy from a handler.
func (s *Server) Drain(d time.Duration) error {
	if err := notInHandler("Drain"); err != nil {
		return err
	}
	done, err := s.use("Drain")
	if err != nil {
		return err
	}
	defer done()
	return check("Drain", C.wsg_server_drain(s.ptr, C.int64_t(d/time.Millisecond)))
}

// RequestStop asks for the graceful stop (or the drain, with
// server.drain_ms) without waiting for it: Run then returns. The one stop
// a handler may ask for.
func (s *Server) RequestStop() error {
	done, err := s.use("RequestStop")
	if err != nil {
		return err
	}
	defer done()
	return check("RequestStop", C.wsg_server_request_stop(s.ptr))
}

// Close stops the server (as Stop) and frees it; every later call returns
// ErrClosed. Closing twice is harmless. ErrBusy from a handler.
func (s *Server) Close() error {
	if err := notInHandler("Close"); err != nil {
		return err
	}
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	// Stopped inside the gate: handlers that run during the stop (OnClose
	// for each connection) may still use the server.
	if err := s.Stop(); err != nil {
		return err
	}
	s.gate.close()
	C.wsg_server_free(s.ptr) // no handler runs after this returns
	s.handle.Delete()
	s.closed = true
	return nil
}

// Draining reports whether a drain or a stop has begun and the server does
// not listen again yet.
func (s *Server) Draining() bool {
	done, err := s.use("Draining")
	if err != nil {
		return false
	}
	defer done()
	return C.wsg_server_draining(s.ptr) != 0
}

// Ready reports whether the server accepts upgrades (what the metrics
// listener's /readyz answers): false before Start/Run, while draining or
// stopping, and when the service loop is stuck in a handler.
func (s *Server) Ready() bool {
	done, err := s.use("Ready")
	if err != nil {
		return false
	}
	defer done()
	var r C.int
	if C.wsg_server_ready(s.ptr, &r) != C.WSG_OK {
		return false
	}
	return r != 0
}

// Port is the bound TCP port (useful with listen.port=0); ErrState when
// not listening.
func (s *Server) Port() (int, error) {
	done, err := s.use("Port")
	if err != nil {
		return 0, err
	}
	defer done()
	var p C.int
	if err := check("Port", C.wsg_server_port(s.ptr, &p)); err != nil {
		return 0, err
	}
	return int(p), nil
}

// MetricsPort is the bound port of the metrics listener (metrics.listen).
func (s *Server) MetricsPort() (int, error) {
	done, err := s.use("MetricsPort")
	if err != nil {
		return 0, err
	}
	defer done()
	var p C.int
	if err := check("MetricsPort", C.wsg_server_metrics_port(s.ptr, &p)); err != nil {
		return 0, err
	}
	return int(p), nil
}

// ConnCount is the number of open connections (0 once closed).
func (s *Server) ConnCount() int {
	done, err := s.use("ConnCount")
	if err != nil {
		return 0
	}
	defer done()
	var n C.size_t
	if C.wsg_server_conn_count(s.ptr, &n) != C.WSG_OK {
		return 0
	}
	return int(n)
}

// Metrics returns the server's metrics as Prometheus text (exposition
// format 0.0.4, content type "text/plain; version=0.0.4"), the text the
// metrics listener serves at /metrics, for an application's own endpoint.
func (s *Server) Metrics() (string, error) {
	done, err := s.use("Metrics")
	if err != nil {
		return "", err
	}
	defer done()
	var n C.size_t
	if err := check("Metrics", C.wsg_server_metrics(s.ptr, nil, 0, &n)); err != nil {
		return "", err
	}
	for {
		// Room to spare: counters may grow between two calls.
		buf := make([]byte, int(n)+4096)
		if err := check("Metrics", C.wsg_server_metrics(s.ptr, (*C.char)(unsafe.Pointer(&buf[0])),
			C.size_t(len(buf)), &n)); err != nil {
			return "", err
		}
		if int(n) < len(buf) {
			return string(buf[:n]), nil
		}
	}
}

// ReloadTLS reloads tls.cert_file and tls.key_file (same paths, new
// contents) for new connections; on bad files the old pair stays.
func (s *Server) ReloadTLS() error {
	done, err := s.use("ReloadTLS")
	if err != nil {
		return err
	}
	defer done()
	return check("ReloadTLS", C.wsg_server_reload_tls(s.ptr))
}

// SetCloseAdvice declares the advice for the application's close codes
// first..last (3000 <= first <= last <= 4999): OnClose's Advice and the
// close log event then say it.
func (s *Server) SetCloseAdvice(first, last int, a Advice) error {
	done, err := s.use("SetCloseAdvice")
	if err != nil {
		return err
	}
	defer done()
	return check("SetCloseAdvice", C.wsg_server_set_close_advice(s.ptr, C.int(first), C.int(last), C.wsg_reconnect(a)))
}

// CloseCodeAdvice is the advice for a close code, this server's
// SetCloseAdvice declarations included.
func (s *Server) CloseCodeAdvice(code int) Advice {
	done, err := s.use("CloseCodeAdvice")
	if err != nil {
		return Advice(C.wsg_close_code_advice(nil, C.int(code)))
	}
	defer done()
	return Advice(C.wsg_close_code_advice(s.ptr, C.int(code)))
}

// bytesPtr is the address of b's data for C (which copies it during the
// call), nil for an empty slice.
func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}
