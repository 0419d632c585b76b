package wsgate

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// answered is one SubscribeFromFunc callback as seen by the test.
type answered struct {
	pos      Position
	err      error
	early    bool  // it ran before SubscribeFromFunc returned
	nestedOK error // SubscribeFrom inside the callback (a handler: ErrBusy)
}

// SubscribeFromFunc inside OnOpen: the query says from where ("from=E-O"),
// "nil" passes no callback, "bad" a topic without history. A publish later
// in the same handler comes after the replay; the callback runs once, after
// the call returned, with the position or the error.
func TestSubscribeFromFuncInAHandler(t *testing.T) {
	opened := make(chan ConnID, 8)
	calls := make(chan error, 8)
	answers := make(chan answered, 8)
	var count atomic.Int64
	s, port, _ := historyServer(t, Options{
		OnOpen: func(s *Server, c ConnID) {
			info, err := s.ConnInfo(c)
			if err != nil || info.Query == "" {
				opened <- c
				return
			}
			text, nilFn := cutSuffix(info.Query, "&nil")
			topic := "h:1"
			if q, bad := cutSuffix(text, "&bad"); bad {
				text, topic = q, "plain"
			}
			from, err := ParsePosition(strings.TrimPrefix(text, "from="))
			if err != nil {
				calls <- err
				return
			}
			var returned atomic.Bool
			var fn func(Position, error)
			if !nilFn {
				fn = func(p Position, err error) {
					count.Add(1)
					_, nested := s.SubscribeFrom(c, "h:2", nil)
					answers <- answered{pos: p, err: err, early: !returned.Load(), nestedOK: nested}
				}
			}
			err = s.SubscribeFromFunc(c, topic, &from, fn)
			returned.Store(true)
			calls <- err
			if err == nil {
				s.Publish("h:1", TextMessage, []byte("live from "+text))
			}
		},
	})
	a := dial(t, port, "/")
	aid := receive(t, opened, "a's OnOpen")
	if err := s.Subscribe(aid, "h:1"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"one", "two", "three"} {
		s.Publish("h:1", TextMessage, []byte(m))
	}
	var E uint64
	for i := 0; i < 3; i++ {
		got, _ := a.ReadText()
		p, err := ParsePosition(strings.SplitN(got, "|", 2)[0])
		if err != nil {
			t.Fatalf("a got %q: %v", got, err)
		}
		E = p.Epoch
	}

	// Replay then live: b missed two and three, then its handler's own publish.
	from := Position{E, 1}
	b := dial(t, port, "/?"+"from="+from.String())
	if err := receive(t, calls, "b's SubscribeFromFunc"); err != nil {
		t.Fatalf("SubscribeFromFunc in OnOpen: %v", err)
	}
	expectPositioned(t, b, Position{E, 2}, "two")
	expectPositioned(t, b, Position{E, 3}, "three")
	expectPositioned(t, b, Position{E, 4}, "live from from="+from.String())
	got := receive(t, answers, "b's callback")
	if got.err != nil || got.pos != (Position{E, 4}) || got.early || !errors.Is(got.nestedOK, ErrBusy) {
		t.Fatalf("b's callback: %+v; want E-4 (the replay, read on a later turn, reaches the handler's publish), no error, after the call, SubscribeFrom inside refused (ErrBusy)", got)
	}
	expectPositioned(t, a, Position{E, 4}, "live from from="+from.String())

	// A position ahead: ErrGone, nothing replayed, subscribed all the same.
	ahead := Position{E, 9}
	c := dial(t, port, "/?from="+ahead.String())
	if err := receive(t, calls, "c's SubscribeFromFunc"); err != nil {
		t.Fatalf("SubscribeFromFunc (ahead) in OnOpen: %v", err)
	}
	got = receive(t, answers, "c's callback")
	var e *Error
	if !errors.Is(got.err, ErrGone) || !errors.As(got.err, &e) || e.Op != "SubscribeFromFunc" ||
		!strings.Contains(e.Message, "ahead") || got.pos != (Position{}) || got.early {
		t.Fatalf("c's callback: %+v; want ErrGone saying ahead, the zero position", got)
	}
	expectPositioned(t, c, Position{E, 5}, "live from from="+ahead.String())

	// No callback: replay and live all the same.
	from = Position{E, 4}
	d := dial(t, port, "/?from="+from.String()+"&nil")
	if err := receive(t, calls, "d's SubscribeFromFunc"); err != nil {
		t.Fatalf("SubscribeFromFunc (nil fn) in OnOpen: %v", err)
	}
	expectPositioned(t, d, Position{E, 5}, "live from from="+ahead.String())
	expectPositioned(t, d, Position{E, 6}, "live from from="+from.String())

	// A call that fails at once never calls back.
	e2 := dial(t, port, "/?from="+from.String()+"&bad")
	err := receive(t, calls, "the failed SubscribeFromFunc")
	if !errors.As(err, &e) || e.Status != ErrInvalid || e.Op != "SubscribeFromFunc" ||
		!strings.Contains(e.Message, "cluster.history_topics") {
		t.Fatalf("a topic without history: %v, want ErrInvalid naming cluster.history_topics", err)
	}
	_ = e2

	// Exactly once each: b and c called back, d had no callback, e2's failed.
	s.Publish("h:1", TextMessage, []byte("last"))
	expectPositioned(t, d, Position{E, 7}, "last") // a round trip through the service thread
	time.Sleep(100 * time.Millisecond)
	if n := count.Load(); n != 2 {
		t.Fatalf("%d callbacks, want 2 (b's and c's, once each)", n)
	}
	select {
	case extra := <-answers:
		t.Fatalf("an extra callback: %+v", extra)
	default:
	}
}

// A callback's panic is recovered and reported as SubscribeFromFunc's, and
// the server keeps serving; a stale id fails at once, never calling back.
func TestSubscribeFromFuncPanicsAndStaleIDs(t *testing.T) {
	panics := make(chan string, 2)
	s, port, opened := historyServer(t, Options{OnPanic: func(s *Server, h string, v any) { panics <- h }})
	a := dial(t, port, "/")
	aid := receive(t, opened, "OnOpen")
	if err := s.SubscribeFromFunc(aid, "h:1", nil, func(Position, error) { panic("in the callback") }); err != nil {
		t.Fatal(err)
	}
	if h := receive(t, panics, "the recovered panic"); h != "SubscribeFromFunc" {
		t.Errorf("OnPanic got %q", h)
	}
	s.Publish("h:1", TextMessage, []byte("still served"))
	if got, err := a.ReadText(); err != nil || !strings.HasSuffix(got, "|still served") {
		t.Fatalf("after the panic: %q, %v", got, err)
	}
	called := make(chan error, 1)
	err := s.SubscribeFromFunc(aid+77, "h:1", nil, func(_ Position, err error) { called <- err })
	var e *Error
	if !errors.As(err, &e) || e.Status != ErrNotFound || e.Op != "SubscribeFromFunc" {
		t.Fatalf("a stale id: %v, want ErrNotFound", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-called:
		t.Fatalf("a call that failed at once called back: %v", err)
	default:
	}
}

// cutSuffix is strings.CutSuffix (Go 1.20; go.mod says older).
func cutSuffix(s, suffix string) (string, bool) {
	if !strings.HasSuffix(s, suffix) {
		return s, false
	}
	return s[:len(s)-len(suffix)], true
}
