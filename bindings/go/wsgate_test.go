package wsgate

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"wsgate/internal/wstest"
)

// testConfig is the loopback, ephemeral-port configuration every test starts from.
func testConfig(extra map[string]string) map[string]string {
	// A short shutdown timeout: a test that ends with a client still
	// connected does not wait the default 2 s for its close handshake.
	cfg := map[string]string{"listen.host": "127.0.0.1", "listen.port": "0", "log.level": "error",
		"server.shutdown_timeout_ms": "200"}
	for k, v := range extra {
		cfg[k] = v
	}
	return cfg
}

// started creates and starts a server; it is closed when the test ends.
func started(t *testing.T, opts Options) (*Server, int) {
	t.Helper()
	opts.Config = testConfig(opts.Config)
	s, err := NewServer(opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	port, err := s.Port()
	if err != nil {
		t.Fatalf("Port: %v", err)
	}
	return s, port
}

func dial(t *testing.T, port int, target string) *wstest.Conn {
	t.Helper()
	c, err := wstest.Dial(port, target)
	if err != nil {
		t.Fatalf("dial %s: %v", target, err)
	}
	t.Cleanup(c.Close)
	return c
}

func expectText(t *testing.T, c *wstest.Conn, want string) {
	t.Helper()
	got, err := c.ReadText()
	if err != nil {
		t.Fatalf("waiting for %q: %v", want, err)
	}
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestStatusSentinelsCoverTheCMap(t *testing.T) {
	rows := statusRows()
	if len(rows) != len(sentinels) {
		t.Errorf("WSG_STATUS_MAP has %d statuses, status.go names %d: add a sentinel for each", len(rows), len(sentinels))
	}
	for _, r := range rows {
		got, ok := sentinels[r.name]
		if !ok {
			t.Errorf("%s (%d) has no Go sentinel in status.go", r.name, r.value)
			continue
		}
		if got != r.value || r.value.String() != r.name {
			t.Errorf("%s: Go sentinel %d (%s), C value %d", r.name, int(got), got, int(r.value))
		}
		if r.value != OK && !strings.Contains(got.Error(), r.doc) {
			t.Errorf("%s.Error() = %q lacks the C description %q", r.name, got.Error(), r.doc)
		}
	}
}

func TestEnumsCoverTheCMaps(t *testing.T) {
	goNames := []map[string]int{
		{"PEER": int(CausePeer), "APP": int(CauseApp), "SHUTDOWN": int(CauseShutdown), "LOST": int(CauseLost),
			"TOO_BIG": int(CauseTooBig), "INVALID_UTF8": int(CauseInvalidUTF8), "BACKPRESSURE": int(CauseBackpressure),
			"PONG_TIMEOUT": int(CausePongTimeout), "WRITE_TIMEOUT": int(CauseWriteTimeout),
			"IDLE_TIMEOUT": int(CauseIdleTimeout), "CLOSE_TIMEOUT": int(CauseCloseTimeout),
			"TOKEN_EXPIRED": int(CauseTokenExpired), "RATE_LIMIT": int(CauseRateLimit),
			"BAD_COMPRESSION": int(CauseBadCompression), "PROTOCOL_ERROR": int(CauseProtocolError),
			"DRAIN": int(CauseDrain)},
		{"BACKOFF": int(AdviceBackoff), "NO": int(AdviceNo), "APP": int(AdviceApp)},
		{"CLOSE": int(QueueClose), "DROP_NEWEST": int(QueueDropNewest), "DROP_OLDEST": int(QueueDropOldest),
			"CONFLATE": int(QueueConflate)},
	}
	for i, list := range []string{"WSG_CLOSE_CAUSE_MAP", "WSG_RECONNECT_MAP", "WSG_QUEUE_POLICY_MAP"} {
		rows := enumRows(i)
		if len(rows) != len(goNames[i]) {
			t.Errorf("%s has %d entries, enums.go names %d", list, len(rows), len(goNames[i]))
		}
		for _, r := range rows {
			if v, ok := goNames[i][r.name]; !ok || v != r.value {
				t.Errorf("%s: %s = %d has no matching Go constant in enums.go", list, r.name, r.value)
			}
		}
	}
	if CauseDrain.String() != "drain" || AdviceNo.String() != "no" || QueueConflate.String() != "conflate" {
		t.Errorf("names: %s %s %s", CauseDrain, AdviceNo, QueueConflate)
	}
}

func TestBadOptionGivesTheCoreMessage(t *testing.T) {
	_, err := NewServer(Options{Config: map[string]string{"log.levl": "debug"}})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(e.Message, "log.levl") || !strings.Contains(e.Message, "log.level") {
		t.Fatalf("message %q should name the key and the closest option", err)
	}
	_, err = NewServer(Options{Config: map[string]string{"listen.port": "70000"}})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "listen.port") {
		t.Fatalf("out of range: %v", err)
	}
	_, err = NewServer(Options{Config: map[string]string{"server.path": "/a\x00b"}})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("NUL in a value: %v", err)
	}
}

type closed struct {
	id ConnID
	ev CloseEvent
}

// Echo through handlers that call Send on the service thread; the close
// handler sees the peer's code, reason, cause and advice.
func TestEchoAndHandlers(t *testing.T) {
	opened := make(chan ConnID, 1)
	ended := make(chan closed, 1)
	s, port := started(t, Options{
		OnOpen: func(s *Server, c ConnID) { opened <- c },
		OnMessage: func(s *Server, c ConnID, typ MessageType, data []byte) {
			if err := s.Send(c, typ, data); err != nil {
				panic(err)
			}
		},
		OnClose: func(s *Server, c ConnID, e CloseEvent) {
			// ConnInfo still answers during OnClose.
			if _, err := s.ConnInfo(c); err != nil {
				e.Reason += " (ConnInfo: " + err.Error() + ")"
			}
			ended <- closed{c, e}
		},
	})
	c := dial(t, port, "/?x=1")
	id := receive(t, opened, "OnOpen")
	if err := c.SendText("hello"); err != nil {
		t.Fatal(err)
	}
	expectText(t, c, "hello")
	if err := c.WriteFrame(wstest.OpBinary, []byte{0, 1, 2, 255}); err != nil {
		t.Fatal(err)
	}
	op, data, err := c.ReadMessage(10 * time.Second)
	if err != nil || op != wstest.OpBinary || string(data) != "\x00\x01\x02\xff" {
		t.Fatalf("binary echo: op %d data %q err %v", op, data, err)
	}
	info, err := s.ConnInfo(id)
	if err != nil || info.ID != id || info.Query != "x=1" || info.MessagesIn != 2 || info.PeerAddr != "127.0.0.1" {
		t.Fatalf("ConnInfo = %+v, %v", info, err)
	}
	if n := s.ConnCount(); n != 1 {
		t.Fatalf("ConnCount = %d", n)
	}
	if !s.Ready() {
		t.Fatal("not Ready while running")
	}
	if err := c.CloseWith(1000, "bye"); err != nil {
		t.Fatal(err)
	}
	got := receive(t, ended, "OnClose")
	want := CloseEvent{Code: 1000, Reason: "bye", Cause: CausePeer, Advice: AdviceApp}
	if got.id != id || got.ev != want {
		t.Fatalf("OnClose(%d, %+v), want (%d, %+v)", got.id, got.ev, id, want)
	}
}

// Topics and users: OnAuth names the user from the query, OnOpen subscribes.
func TestPublishAndUserSend(t *testing.T) {
	opened := make(chan ConnID, 4)
	s, port := started(t, Options{
		Config: map[string]string{"auth.mode": "callback"},
		OnAuth: func(s *Server, r *AuthRequest) {
			q, _ := url.ParseQuery(r.Query())
			if u := q.Get("user"); u != "" {
				if err := r.Accept(u); err != nil {
					panic(err)
				}
				return
			}
			r.Refuse(403, "no user")
		},
		OnOpen: func(s *Server, c ConnID) {
			if err := s.Subscribe(c, "room"); err != nil {
				panic(err)
			}
			opened <- c
		},
	})
	if _, err := wstest.Dial(port, "/"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("no user: %v, want a 403 refusal", err)
	}
	alice := dial(t, port, "/?user=alice")
	a := receive(t, opened, "alice's OnOpen")
	bob := dial(t, port, "/?user=bob")
	receive(t, opened, "bob's OnOpen")

	subs, err := s.TopicSubscribers("room")
	if err != nil || len(subs) != 2 {
		t.Fatalf("TopicSubscribers = %v, %v", subs, err)
	}
	if err := s.Publish("room", TextMessage, []byte("to all")); err != nil {
		t.Fatal(err)
	}
	expectText(t, alice, "to all")
	expectText(t, bob, "to all")

	ids, err := s.UserConnIDs("alice")
	if err != nil || len(ids) != 1 || ids[0] != a {
		t.Fatalf("UserConnIDs(alice) = %v, %v; want [%d]", ids, err, a)
	}
	if err := s.UserSend("alice", TextMessage, []byte("only alice")); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish("room", TextMessage, []byte("after")); err != nil {
		t.Fatal(err)
	}
	expectText(t, alice, "only alice")
	expectText(t, alice, "after")
	expectText(t, bob, "after") // bob got no "only alice" before it
	if err := s.UserSend("carol", TextMessage, []byte("x")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("UserSend to nobody: %v, want ErrNotFound", err)
	}
	info, err := s.ConnInfo(a)
	if err != nil || info.UserID != "alice" || len(info.Topics) != 1 || info.Topics[0] != "room" {
		t.Fatalf("ConnInfo(alice) = %+v, %v", info, err)
	}
	if err := s.Unsubscribe(a, "room"); err != nil {
		t.Fatal(err)
	}
	if err := s.UserClose("bob", 4000, "later"); err != nil {
		t.Fatal(err)
	}
	if code, reason, err := bob.ReadClose(); err != nil || code != 4000 || reason != "later" {
		t.Fatalf("bob's close: %d %q %v", code, reason, err)
	}
}

func TestErrorsWrapTheStatus(t *testing.T) {
	busy := make(chan error, 1)
	opened := make(chan ConnID, 1)
	s, err := NewServer(Options{
		Config: testConfig(nil),
		OnOpen: func(s *Server, c ConnID) { opened <- c },
		OnMessage: func(s *Server, c ConnID, typ MessageType, data []byte) {
			busy <- s.Stop() // waits for the service thread: refused
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Not running yet.
	if err := s.Publish("t", TextMessage, nil); !errors.Is(err, ErrState) {
		t.Fatalf("Publish before Start: %v, want ErrState", err)
	}
	if _, err := s.Port(); !errors.Is(err, ErrState) {
		t.Fatalf("Port before Listen: %v, want ErrState", err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	err = s.Send(ConnID(123456789), TextMessage, []byte("x"))
	var e *Error
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &e) || e.Op != "Send" || e.Message == "" {
		t.Fatalf("Send to a stale id: %#v", err)
	}
	if errors.Is(err, ErrBusy) {
		t.Fatal("ErrNotFound also matches ErrBusy")
	}
	if err := s.Publish("a\x00b", TextMessage, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("topic with NUL: %v", err)
	}
	port, _ := s.Port()
	c := dial(t, port, "/")
	id := receive(t, opened, "OnOpen")
	if err := s.Send(id, MessageType(7), []byte("x")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Send with a bad type: %v, want ErrInvalid", err)
	}
	if err := s.SetConnTimeout(id, "heartbeat.nope_ms", 1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("SetConnTimeout with a bad key: %v, want ErrInvalid", err)
	}
	if err := c.SendText("stop?"); err != nil {
		t.Fatal(err)
	}
	if err := receive(t, busy, "the handler's Stop"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Stop from a handler: %v, want ErrBusy", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Send(ConnID(1), TextMessage, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v, want ErrClosed", err)
	}
	if s.ConnCount() != 0 || s.Ready() {
		t.Fatal("a closed server reports connections or readiness")
	}
}

// Run serves until its context ends, then drains (server.drain_ms): the
// client gets 1012 and Run returns nil.
func TestRunDrainsOnCancel(t *testing.T) {
	opened := make(chan ConnID, 1)
	ended := make(chan closed, 1)
	s, err := NewServer(Options{
		Config:  testConfig(map[string]string{"server.drain_ms": "200"}),
		OnOpen:  func(s *Server, c ConnID) { opened <- c },
		OnClose: func(s *Server, c ConnID, e CloseEvent) { ended <- closed{c, e} },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	port, _ := s.Port()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	c := dial(t, port, "/")
	receive(t, opened, "OnOpen")
	cancel()
	code, _, err := c.ReadClose()
	if err != nil || code != 1012 {
		t.Fatalf("close on cancel: %d %v, want 1012", code, err)
	}
	if err := receive(t, ran, "Run's return"); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if got := receive(t, ended, "OnClose"); got.ev.Cause != CauseDrain || got.ev.Advice != AdviceBackoff {
		t.Fatalf("OnClose %+v, want cause drain, advice backoff", got.ev)
	}
	// The cancel left no stop request behind: the server runs again (on
	// a new ephemeral port).
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	port, _ = s.Port()
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { ran <- s.Run(ctx2) }()
	dial(t, port, "/")
	receive(t, opened, "OnOpen after a restart")
	cancel2()
	if err := receive(t, ran, "second Run's return"); err != nil {
		t.Fatalf("second Run = %v", err)
	}
}

// Many goroutines send to one connection at once: every message arrives
// (per goroutine in order), and -race finds nothing.
func TestConcurrentSend(t *testing.T) {
	opened := make(chan ConnID, 1)
	s, port := started(t, Options{OnOpen: func(s *Server, c ConnID) { opened <- c }})
	c := dial(t, port, "/")
	id := receive(t, opened, "OnOpen")
	const senders, each = 8, 50
	var wg sync.WaitGroup
	for g := 0; g < senders; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			buf := make([]byte, 0, 16)
			for i := 0; i < each; i++ {
				buf = fmt.Appendf(buf[:0], "%d %d", g, i)
				if err := s.Send(id, TextMessage, buf); err != nil {
					t.Errorf("Send: %v", err)
					return
				}
				// The core copied it: reusing buf at once is fine.
			}
		}(g)
	}
	next := make([]int, senders)
	for n := 0; n < senders*each; n++ {
		m, err := c.ReadText()
		if err != nil {
			t.Fatalf("after %d messages: %v", n, err)
		}
		var g, i int
		if _, err := fmt.Sscanf(m, "%d %d", &g, &i); err != nil || g < 0 || g >= senders || i != next[g] {
			t.Fatalf("message %q out of order (want %d from %d)", m, next[g], g)
		}
		next[g]++
	}
	wg.Wait()
	info, err := s.ConnInfo(id)
	if err != nil || info.MessagesOut != senders*each {
		t.Fatalf("MessagesOut = %d, %v", info.MessagesOut, err)
	}
}

func TestMetricsAndLog(t *testing.T) {
	var mu sync.Mutex
	events := map[string]bool{}
	opened := make(chan ConnID, 1)
	s, port := started(t, Options{
		Config: map[string]string{"log.level": "info"},
		OnOpen: func(s *Server, c ConnID) { opened <- c },
		OnLog: func(s *Server, e LogEvent) {
			if !strings.HasPrefix(string(e.JSON), "{") {
				panic("not JSON: " + string(e.JSON))
			}
			mu.Lock()
			events[e.Event] = true
			mu.Unlock()
		},
	})
	c := dial(t, port, "/")
	receive(t, opened, "OnOpen")
	text, err := s.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "# TYPE wsgate_connections gauge") || !strings.Contains(text, "\nwsgate_connections 1\n") {
		t.Fatalf("metrics text lacks wsgate_connections 1:\n%.600s", text)
	}
	c.CloseWith(1000, "")
	mu.Lock()
	defer mu.Unlock()
	if !events["listen"] {
		t.Fatalf("OnLog saw no listen event: %v", events)
	}
}

// A handler that panics is recovered: the server keeps serving.
func TestHandlerPanicIsRecovered(t *testing.T) {
	panics := make(chan string, 1)
	s, port := started(t, Options{
		OnMessage: func(s *Server, c ConnID, typ MessageType, data []byte) {
			if string(data) == "boom" {
				panic("boom")
			}
			s.Send(c, typ, data)
		},
		OnPanic: func(s *Server, handler string, v any) { panics <- fmt.Sprint(handler, ": ", v) },
	})
	_ = s
	c := dial(t, port, "/")
	c.SendText("boom")
	if got := receive(t, panics, "OnPanic"); got != "OnMessage: boom" {
		t.Fatalf("OnPanic got %q", got)
	}
	c.SendText("still here")
	expectText(t, c, "still here")
}

// An AuthRequest is usable only during its OnAuth call, on its goroutine.
func TestAuthRequestOutlivesItsCall(t *testing.T) {
	kept := make(chan *AuthRequest, 1)
	fromOther := make(chan error, 1)
	s, port := started(t, Options{
		Config: map[string]string{"auth.mode": "callback"},
		OnAuth: func(s *Server, r *AuthRequest) {
			done := make(chan struct{})
			go func() { fromOther <- r.Accept("x"); close(done) }()
			<-done
			if v, ok := r.Header("host"); !ok || !strings.HasPrefix(v, "127.0.0.1") {
				r.Refuse(403, "no host")
				return
			}
			r.Accept("u")
			kept <- r
		},
	})
	_ = s
	dial(t, port, "/")
	if err := receive(t, fromOther, "Accept from another goroutine"); !errors.Is(err, ErrState) {
		t.Fatalf("Accept from another goroutine: %v, want ErrState", err)
	}
	r := receive(t, kept, "the request")
	if err := r.Accept("late"); !errors.Is(err, ErrState) {
		t.Fatalf("Accept after the call: %v, want ErrState", err)
	}
}

// OnDrain fires once a client that fell behind has read its queue down.
func TestOnDrainAfterASlowReader(t *testing.T) {
	opened := make(chan ConnID, 1)
	drained := make(chan int, 64)
	s, port := started(t, Options{
		Config: map[string]string{"limits.queue_high_water_bytes": "262144", "limits.queue_low_water_bytes": "65536",
			"limits.max_queue_bytes": "67108864"},
		OnOpen: func(s *Server, c ConnID) { opened <- c },
		OnDrain: func(s *Server, c ConnID, queued int) {
			select { // a handler must never block the service thread
			case drained <- queued:
			default:
			}
		},
	})
	c := dial(t, port, "/")
	id := receive(t, opened, "OnOpen")
	// 16 MiB to a client that reads nothing yet: more than the kernel's
	// socket buffers take, so the rest waits in its queue.
	const count = 256
	chunk := make([]byte, 64<<10)
	for i := 0; i < count; i++ {
		if err := s.Send(id, BinaryMessage, chunk); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		info, err := s.ConnInfo(id)
		if err != nil {
			t.Fatal(err)
		}
		if info.QueuedBytes > 262144 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue at %d bytes after %d messages: the client never fell behind", info.QueuedBytes, count)
		}
	}
	for i := 0; i < count; i++ {
		if _, _, err := c.ReadMessage(10 * time.Second); err != nil {
			t.Fatalf("message %d of %d: %v", i, count, err)
		}
	}
	if q := receive(t, drained, "OnDrain"); q > 65536 {
		t.Fatalf("OnDrain with %d bytes queued, above the low-water mark", q)
	}
}

// Close while Run serves: handlers that run during the stop (OnClose for
// each connection) still use the server, Run returns nil, Close returns,
// and Close from a handler is refused.
func TestCloseWhileRunning(t *testing.T) {
	opened := make(chan ConnID, 1)
	fromHandler := make(chan error, 1)
	s, err := NewServer(Options{
		Config: testConfig(nil),
		OnOpen: func(s *Server, c ConnID) {
			s.Subscribe(c, "all")
			fromHandler <- s.Close()
			opened <- c
		},
		OnClose: func(s *Server, c ConnID, e CloseEvent) {
			if err := s.Publish("all", TextMessage, []byte("bye")); err != nil && !errors.Is(err, ErrState) {
				panic(err)
			}
			if _, err := s.ConnInfo(c); err != nil {
				panic(err)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	port, _ := s.Port()
	ran := make(chan error, 1)
	go func() { ran <- s.Run(context.Background()) }()
	c := dial(t, port, "/")
	receive(t, opened, "OnOpen")
	if err := receive(t, fromHandler, "Close from a handler"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Close from a handler: %v, want ErrBusy", err)
	}
	go c.ReadClose() // answers the close handshake
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	if err := receive(t, closed, "Close"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := receive(t, ran, "Run's return"); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := s.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v, want ErrClosed", err)
	}
}

// A port that is taken: Run returns ErrIO with the core's reason.
func TestRunReportsABindError(t *testing.T) {
	a, port := started(t, Options{})
	_ = a
	b, err := NewServer(Options{Config: testConfig(map[string]string{"listen.port": fmt.Sprint(port)})})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Run(context.Background()); !errors.Is(err, ErrIO) {
		t.Fatalf("Run on a taken port: %v, want ErrIO", err)
	}
}
