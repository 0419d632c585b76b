package wsgate

import (
	"errors"
	"strings"
	"testing"
	"time"

	"wsgate/internal/wstest"
)

func TestPositionText(t *testing.T) {
	for _, p := range []Position{{}, {12, 3}, {^uint64(0), ^uint64(0)}} {
		text := p.String()
		q, err := ParsePosition(text)
		if err != nil || q != p {
			t.Errorf("ParsePosition(%q) = %v, %v; want %v", text, q, err, p)
		}
	}
	if got := (Position{Epoch: 1234, Offset: 56}).String(); got != "1234-56" {
		t.Errorf("String() = %q, want 1234-56", got)
	}
	if got := (Position{^uint64(0), ^uint64(0)}).String(); got != "18446744073709551615-18446744073709551615" {
		t.Errorf("the largest position: %q", got)
	}
	for _, bad := range []string{"", "-", "12", "12-", "-3", "a-1", "1-2-3", "01-2", "1-0", "0-1", " 1-2",
		"18446744073709551616-1", "+1-2", "1-2\x00"} {
		p, err := ParsePosition(bad)
		var e *Error
		if !errors.As(err, &e) || e.Status != ErrInvalid || e.Op != "ParsePosition" || e.Message == "" {
			t.Errorf("ParsePosition(%q) = %v, %v; want ErrInvalid with a message", bad, p, err)
		}
		if p != (Position{}) {
			t.Errorf("ParsePosition(%q) gave %v with its error", bad, p)
		}
	}
	if _, err := ParsePosition("1-x"); err == nil || !strings.Contains(err.Error(), "EPOCH-OFFSET") {
		t.Errorf("the message should say the expected form: %v", err)
	}
}

// historyServer keeps "h:*" (3 messages) and prefixes each history message
// with its position ("EPOCH-OFFSET|payload"); OnOpen reports the ids.
func historyServer(t *testing.T, opts Options) (*Server, int, chan ConnID) {
	t.Helper()
	opened := make(chan ConnID, 8)
	opts.Config = testConfig(map[string]string{"cluster.history_topics": "h:*", "cluster.history_size": "3"})
	if opts.OnOpen == nil {
		opts.OnOpen = func(s *Server, c ConnID) { opened <- c }
	}
	s, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	err = s.OnHistory(func(topic string, pos Position, msg *HistoryMessage) {
		_, data := msg.Payload()
		if err := msg.Set([]byte(pos.String() + "|" + string(data))); err != nil {
			panic(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	port, err := s.Port()
	if err != nil {
		t.Fatal(err)
	}
	return s, port, opened
}

// expectPositioned reads "EPOCH-OFFSET|payload" and checks both.
func expectPositioned(t *testing.T, c *wstest.Conn, want Position, payload string) {
	t.Helper()
	got, err := c.ReadText()
	if err != nil {
		t.Fatalf("waiting for %v|%s: %v", want, payload, err)
	}
	if got != want.String()+"|"+payload {
		t.Fatalf("got %q, want %q", got, want.String()+"|"+payload)
	}
}

func TestSubscribeFromReplaysWhatWasMissed(t *testing.T) {
	s, port, opened := historyServer(t, Options{})
	a := dial(t, port, "/")
	aid := receive(t, opened, "a's OnOpen")
	if pos, err := s.SubscribeFrom(aid, "h:1", nil); err != nil || pos != (Position{}) {
		t.Fatalf("SubscribeFrom a topic without messages = %v, %v; want the zero position", pos, err)
	}
	msgs := []string{"one", "two", "three", "four", "five"}
	for _, m := range msgs {
		if err := s.Publish("h:1", TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	first, err := a.ReadText()
	if err != nil {
		t.Fatal(err)
	}
	text, _, _ := strings.Cut(first, "|")
	p1, err := ParsePosition(text)
	if err != nil || p1.Epoch == 0 || p1.Offset != 1 || first != text+"|one" {
		t.Fatalf("the first message %q: position %v, %v", first, p1, err)
	}
	E := p1.Epoch
	for i, m := range msgs[1:] {
		expectPositioned(t, a, Position{E, uint64(i) + 2}, m)
	}

	// b comes back from 3: gets 4 and 5 (shaped as the live ones), then the live ones.
	b := dial(t, port, "/")
	bid := receive(t, opened, "b's OnOpen")
	pos, err := s.SubscribeFrom(bid, "h:1", &Position{E, 3})
	if err != nil || pos != (Position{E, 5}) {
		t.Fatalf("SubscribeFrom(E-3) = %v, %v; want %v", pos, err, Position{E, 5})
	}
	expectPositioned(t, b, Position{E, 4}, "four")
	expectPositioned(t, b, Position{E, 5}, "five")
	s.Publish("h:1", TextMessage, []byte("six"))
	expectPositioned(t, b, Position{E, 6}, "six")
	expectPositioned(t, a, Position{E, 6}, "six")

	// Up to date: nothing replayed, the current position.
	c := dial(t, port, "/")
	cid := receive(t, opened, "c's OnOpen")
	if pos, err := s.SubscribeFrom(cid, "h:1", &Position{E, 6}); err != nil || pos != (Position{E, 6}) {
		t.Fatalf("SubscribeFrom(the current position) = %v, %v", pos, err)
	}
	s.Publish("h:1", TextMessage, []byte("seven"))
	expectPositioned(t, c, Position{E, 7}, "seven")

	// Bad calls fail at once with the core's reason.
	for _, tc := range []struct {
		name  string
		conn  ConnID
		topic string
		want  Status
	}{
		{"a topic without history", aid, "plain", ErrInvalid},
		{"an empty topic", aid, "", ErrInvalid},
		{"a NUL in the topic", aid, "h:\x00", ErrInvalid},
		{"a stale id", aid + 77, "h:1", ErrNotFound},
	} {
		_, err := s.SubscribeFrom(tc.conn, tc.topic, &Position{E, 1})
		var e *Error
		if !errors.As(err, &e) || e.Status != tc.want || e.Op != "SubscribeFrom" || e.Message == "" {
			t.Errorf("%s: %v, want %v with a message", tc.name, err, tc.want)
		}
	}
	if _, err := s.SubscribeFrom(aid, "plain", nil); err == nil || !strings.Contains(err.Error(), "cluster.history_topics") {
		t.Errorf("a topic without history should name cluster.history_topics: %v", err)
	}
}

func TestSubscribeFromAGonePosition(t *testing.T) {
	s, port, opened := historyServer(t, Options{})
	a := dial(t, port, "/")
	aid := receive(t, opened, "a's OnOpen")
	s.Subscribe(aid, "h:1")
	for _, m := range []string{"one", "two", "three", "four", "five"} {
		s.Publish("h:1", TextMessage, []byte(m))
	}
	var last Position
	for i := 0; i < 5; i++ {
		got, err := a.ReadText()
		if err != nil {
			t.Fatal(err)
		}
		text, _, _ := strings.Cut(got, "|")
		if last, err = ParsePosition(text); err != nil {
			t.Fatal(err)
		}
	}
	E := last.Epoch // kept: 3, 4, 5

	b := dial(t, port, "/")
	bid := receive(t, opened, "b's OnOpen")
	for _, tc := range []struct {
		name string
		from Position
		why  string
	}{
		{"trimmed", Position{E, 1}, "older than the oldest"},
		{"the whole history, no longer whole", Position{}, ""},
		{"another epoch", Position{E ^ 2, 4}, "another epoch"},
		{"ahead", Position{E, 9}, "ahead"},
	} {
		from := tc.from
		pos, err := s.SubscribeFrom(bid, "h:1", &from)
		var e *Error
		if !errors.Is(err, ErrGone) || !errors.As(err, &e) || !strings.Contains(e.Message, tc.why) {
			t.Errorf("%s (%v): %v, want ErrGone saying %q", tc.name, tc.from, err, tc.why)
		}
		if pos != (Position{}) {
			t.Errorf("%s: position %v with ErrGone", tc.name, pos)
		}
	}
	// Nothing replayed, but subscribed: the next message is the live one.
	s.Publish("h:1", TextMessage, []byte("six"))
	expectPositioned(t, b, Position{E, 6}, "six")
	// The oldest kept minus one still replays everything kept.
	c := dial(t, port, "/")
	cid := receive(t, opened, "c's OnOpen")
	if pos, err := s.SubscribeFrom(cid, "h:1", &Position{E, 3}); err != nil || pos != (Position{E, 6}) {
		t.Fatalf("SubscribeFrom(E-3) = %v, %v", pos, err)
	}
	for i, m := range []string{"four", "five", "six"} {
		expectPositioned(t, c, Position{E, uint64(i) + 4}, m)
	}
}

// The hook shapes text and binary messages alike, sees what was published,
// refuses bad replacements, and its message is dead after the call.
func TestHistoryHookShapesPayloads(t *testing.T) {
	opened := make(chan ConnID, 2)
	panics := make(chan string, 4)
	s, err := NewServer(Options{
		Config:  testConfig(map[string]string{"cluster.history_topics": "h", "limits.max_queue_bytes": "65536"}),
		OnOpen:  func(s *Server, c ConnID) { opened <- c },
		OnPanic: func(s *Server, handler string, v any) { panics <- handler },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	kept := make(chan *HistoryMessage, 1)
	refused := make(chan error, 4)
	err = s.OnHistory(func(topic string, pos Position, msg *HistoryMessage) {
		typ, data := msg.Payload()
		switch string(data) {
		case "keep":
			kept <- msg
			return
		case "panic":
			panic("shaping failed")
		case "bad":
			refused <- msg.Set([]byte{0xff, 0xfe})
			refused <- msg.Set(make([]byte, 65537))
			_, err := s.SubscribeFrom(1, "h", nil) // waits for the service thread: refused
			refused <- err
			other := make(chan error)
			go func() { other <- msg.Set([]byte("from elsewhere")) }()
			refused <- <-other
			return
		}
		out := append([]byte(topic+" "+pos.String()+" "), data...)
		if typ == BinaryMessage {
			out = append([]byte{0}, data...)
		}
		msg.Set(out)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.OnHistory(nil); !errors.Is(err, ErrState) {
		t.Fatalf("OnHistory after Start: %v, want ErrState", err)
	}
	port, _ := s.Port()
	a := dial(t, port, "/")
	aid := receive(t, opened, "OnOpen")
	if _, err := s.SubscribeFrom(aid, "h", nil); err != nil {
		t.Fatal(err)
	}
	s.Publish("h", TextMessage, []byte("hi"))
	got, _ := a.ReadText()
	text, payload, _ := strings.Cut(strings.TrimPrefix(got, "h "), " ")
	pos, err := ParsePosition(text)
	if err != nil || pos.Offset != 1 || payload != "hi" {
		t.Fatalf("shaped text %q", got)
	}
	s.Publish("h", BinaryMessage, []byte{1, 2})
	if op, data, err := a.ReadMessage(5 * time.Second); err != nil || op != wstest.OpBinary || string(data) != "\x00\x01\x02" {
		t.Fatalf("shaped binary: op %d %q %v", op, data, err)
	}

	// Refused replacements leave the message as published.
	s.Publish("h", TextMessage, []byte("bad"))
	expectText(t, a, "bad")
	for _, want := range []struct {
		what string
		st   Status
	}{{"Set of invalid UTF-8", ErrInvalid}, {"Set past limits.max_queue_bytes", ErrInvalid},
		{"SubscribeFrom inside the hook", ErrBusy}, {"Set from another goroutine during the hook", ErrState}} {
		var e *Error
		if err := receive(t, refused, want.what); !errors.As(err, &e) || e.Status != want.st || e.Message == "" {
			t.Errorf("%s: %v, want %v with a message", want.what, err, want.st)
		}
	}

	// A panic is recovered: the message goes out as published.
	s.Publish("h", TextMessage, []byte("panic"))
	expectText(t, a, "panic")
	if h := receive(t, panics, "the recovered panic"); h != "OnHistory" {
		t.Errorf("OnPanic got %q", h)
	}

	// Kept past its call, the message is dead.
	s.Publish("h", TextMessage, []byte("keep"))
	msg := receive(t, kept, "the kept message")
	expectText(t, a, "keep")
	if err := msg.Set([]byte("late")); !errors.Is(err, ErrState) {
		t.Errorf("Set after the hook returned: %v, want ErrState", err)
	}
	if typ, data := msg.Payload(); typ != 0 || data != nil {
		t.Errorf("Payload after the hook returned: %v %q", typ, data)
	}
}

// SubscribeFrom from a handler returns ErrBusy at once (waiting would wait
// for this very thread) and subscribes nothing; from a goroutine it works.
func TestSubscribeFromInAHandler(t *testing.T) {
	results := make(chan error, 2)
	s, port, _ := historyServer(t, Options{
		OnOpen: func(s *Server, c ConnID) {
			t0 := time.Now()
			_, err := s.SubscribeFrom(c, "h:1", nil)
			if time.Since(t0) > time.Second {
				err = errors.New("SubscribeFrom took over a second in a handler")
			}
			results <- err
			go func() {
				_, err := s.SubscribeFrom(c, "h:2", &Position{})
				results <- err
			}()
		},
	})
	a := dial(t, port, "/")
	if err := receive(t, results, "SubscribeFrom in OnOpen"); !errors.Is(err, ErrBusy) {
		t.Fatalf("in OnOpen: %v, want ErrBusy", err)
	}
	if err := receive(t, results, "SubscribeFrom from a goroutine"); err != nil {
		t.Fatalf("from a goroutine: %v", err)
	}
	s.Publish("h:1", TextMessage, []byte("not subscribed"))
	s.Publish("h:2", TextMessage, []byte("subscribed"))
	got, err := a.ReadText()
	if err != nil || !strings.HasSuffix(got, "|subscribed") {
		t.Fatalf("got %q, %v; want only h:2's message", got, err)
	}
}
