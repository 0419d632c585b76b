package wsgate

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// userServer: OnAuth takes ?user=, OnOpen subscribes to "room" and reports the id.
func userServer(t *testing.T, opts Options) (*Server, int, chan ConnID) {
	opened := make(chan ConnID, 8)
	if opts.Config == nil {
		opts.Config = map[string]string{}
	}
	opts.Config["auth.mode"] = "callback"
	opts.OnAuth = func(s *Server, r *AuthRequest) {
		q, _ := url.ParseQuery(r.Query())
		r.Accept(q.Get("user"))
	}
	opts.OnOpen = func(s *Server, c ConnID) {
		if err := s.Subscribe(c, "room"); err != nil {
			panic(err)
		}
		opened <- c
	}
	s, port := started(t, opts)
	return s, port, opened
}

func TestPresenceWithoutCluster(t *testing.T) {
	s, port, opened := userServer(t, Options{})
	before := time.Now().Add(-time.Second)
	dial(t, port, "/?user=alice")
	a := receive(t, opened, "alice's OnOpen")
	dial(t, port, "/?user=bob")
	b := receive(t, opened, "bob's OnOpen")
	dial(t, port, "/?user=alice")
	a2 := receive(t, opened, "alice's second OnOpen")

	room, err := s.TopicPresence("room")
	if err != nil || len(room) != 3 {
		t.Fatalf("TopicPresence(room) = %v, %v; want 3 entries", room, err)
	}
	sort.Slice(room, func(i, j int) bool { return room[i].Conn < room[j].Conn })
	want := map[ConnID]string{a: "alice", b: "bob", a2: "alice"}
	for _, p := range room {
		if want[p.Conn] != p.UserID {
			t.Errorf("entry %+v: want user %q", p, want[p.Conn])
		}
		if p.Since.Before(before) || p.Since.After(time.Now().Add(time.Second)) {
			t.Errorf("entry %+v: Since is not about now", p)
		}
		if p.Node() != int(uint64(p.Conn)>>48) {
			t.Errorf("entry %+v: Node() = %d", p, p.Node())
		}
	}
	alice, err := s.UserPresenceContext(context.Background(), "alice")
	if err != nil || len(alice) != 2 || alice[0].UserID != "alice" {
		t.Fatalf("UserPresence(alice) = %v, %v", alice, err)
	}
	if nobody, err := s.UserPresence("carol"); err != nil || len(nobody) != 0 {
		t.Fatalf("UserPresence(carol) = %v, %v; want none", nobody, err)
	}
	if none, err := s.TopicPresence("empty"); err != nil || len(none) != 0 {
		t.Fatalf("TopicPresence(empty) = %v, %v; want none", none, err)
	}
	var e *Error
	if _, err := s.TopicPresence(""); !errors.As(err, &e) || e.Status != ErrInvalid || e.Op != "TopicPresence" || e.Message == "" {
		t.Fatalf("TopicPresence(\"\") = %v; want ErrInvalid with the core's message", err)
	}
	if _, err := s.UserPresence("a\x00b"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a NUL in the user id: %v, want ErrInvalid", err)
	}
}

func TestSessionDataWithoutCluster(t *testing.T) {
	s, _ := started(t, Options{})
	if _, err := s.SessionGet("k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SessionGet of nothing: %v, want ErrNotFound", err)
	}
	value := []byte("bin\x00ary")
	if err := s.SessionSet("k", value, 0); err != nil {
		t.Fatal(err)
	}
	value[0] = 'X' // copied at the call
	if got, err := s.SessionGet("k"); err != nil || !bytes.Equal(got, []byte("bin\x00ary")) {
		t.Fatalf("SessionGet = %q, %v", got, err)
	}
	if err := s.SessionSet("empty", nil, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, err := s.SessionGet("empty"); err != nil || len(got) != 0 {
		t.Fatalf("SessionGet(empty) = %q, %v", got, err)
	}
	if err := s.SessionDelete("k"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SessionGet("k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SessionGet after delete: %v, want ErrNotFound", err)
	}
	if err := s.SessionDelete("k"); err != nil {
		t.Fatalf("SessionDelete of nothing: %v, want nil", err)
	}
	// A TTL under a millisecond is not "the default": it ends at once.
	if err := s.SessionSet("brief", []byte("x"), 300*time.Microsecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		_, err := s.SessionGet("brief")
		if errors.Is(err, ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a 1 ms value is still there: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}

	for _, c := range []struct {
		name string
		err  error
		want Status
	}{
		{"empty key", s.SessionSet("", []byte("v"), 0), ErrInvalid},
		{"long key", s.SessionSet(strings.Repeat("k", 256), []byte("v"), 0), ErrInvalid},
		{"NUL in key", s.SessionSet("a\x00b", []byte("v"), 0), ErrInvalid},
		{"negative TTL", s.SessionSet("neg", []byte("v"), -time.Second), ErrInvalid},
		{"too large", s.SessionSet("big", make([]byte, 65537), 0), ErrLimit},
		{"delete empty key", s.SessionDelete(""), ErrInvalid},
	} {
		var e *Error
		if !errors.As(c.err, &e) || e.Status != c.want || e.Message == "" {
			t.Errorf("%s: %v, want %v with a message", c.name, c.err, c.want)
		}
	}
	for _, k := range []string{"neg", "big"} {
		if _, err := s.SessionGet(k); !errors.Is(err, ErrNotFound) {
			t.Errorf("a refused set stored %q: %v", k, err)
		}
	}
}

func TestAsyncCallsFromAHandler(t *testing.T) {
	var busy atomic.Int32
	s, port := started(t, Options{
		OnMessage: func(s *Server, c ConnID, typ MessageType, data []byte) {
			// Waiting here would wait for this very thread: refused, and
			// nothing is stored.
			if err := s.SessionSet("from-handler", data, 0); errors.Is(err, ErrBusy) {
				busy.Add(1)
			}
			if _, err := s.UserPresence("x"); errors.Is(err, ErrBusy) {
				busy.Add(1)
			}
			// The way: a goroutine waits, then answers.
			go func() {
				if err := s.SessionSet("greeting", data, 0); err != nil {
					s.Send(c, TextMessage, []byte(err.Error()))
					return
				}
				v, err := s.SessionGet("greeting")
				if err != nil {
					v = []byte(err.Error())
				}
				s.Send(c, TextMessage, v)
			}()
		},
	})
	c := dial(t, port, "/")
	c.SendText("hello")
	expectText(t, c, "hello")
	if busy.Load() != 2 {
		t.Fatalf("%d of 2 calls from the handler said ErrBusy", busy.Load())
	}
	if _, err := s.SessionGet("from-handler"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the refused set stored a value: %v", err)
	}
}

func TestAsyncCallsHonourTheContext(t *testing.T) {
	holding := make(chan struct{}, 1)
	s, port := started(t, Options{
		OnMessage: func(s *Server, c ConnID, typ MessageType, data []byte) {
			// Holds the service thread (what a handler must not do), so
			// that a wait elsewhere gives up.
			holding <- struct{}{}
			time.Sleep(400 * time.Millisecond)
		},
	})
	if err := s.SessionSet("k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.SessionGet("k"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SessionGetContext(done, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled context: %v, want context.Canceled", err)
	}

	c := dial(t, port, "/")
	c.SendText("slow")
	receive(t, holding, "the slow handler")
	ctx, stop := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer stop()
	t0 := time.Now()
	_, err := s.SessionGetContext(ctx, "k")
	waited := time.Since(t0)
	var e *Error
	if !errors.As(err, &e) || e.Status != ErrTimeout || !errors.Is(err, ErrTimeout) {
		t.Fatalf("past the deadline: %v, want ErrTimeout", err)
	}
	if waited < 40*time.Millisecond || waited > 350*time.Millisecond {
		t.Fatalf("gave up after %v, want about 50 ms", waited)
	}
	// The late answer is dropped; the next call gets its own.
	if v, err := s.SessionGet("k"); err != nil || string(v) != "v" {
		t.Fatalf("SessionGet after a timeout = %q, %v", v, err)
	}
}

func TestAsyncCallsNeedARunningServer(t *testing.T) {
	s, err := NewServer(Options{Config: testConfig(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.TopicPresence("room"); !errors.Is(err, ErrState) {
		t.Fatalf("before Start: %v, want ErrState", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.SessionSet("k", nil, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
}

// startRedis runs a redis-server of its own on a unix socket in a temporary
// directory and returns the socket's path; it is killed when the test ends.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("no redis-server on PATH (Debian: redis-server)")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "redis.sock")
	cmd := exec.Command(bin, "--port", "0", "--unixsocket", sock, "--dir", dir, "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not create its socket in 10 s")
		}
	}
}

// Two servers over one Redis: presence lists the connections of both, and
// session data written on one is read on the other.
func TestPresenceAndSessionsAcrossTwoServers(t *testing.T) {
	sock := startRedis(t)
	var servers [2]*Server
	var ports [2]int
	var opened [2]chan ConnID
	for i := range servers {
		opts := Options{Config: map[string]string{"cluster.redis": "unix:" + sock}}
		servers[i], ports[i], opened[i] = userServer(t, opts)
	}
	dial(t, ports[0], "/?user=alice")
	receive(t, opened[0], "alice's OnOpen")
	dial(t, ports[1], "/?user=bob")
	b := receive(t, opened[1], "bob's OnOpen")

	// Each server writes its entries once it has its node number.
	for _, s := range servers {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			room, err := s.TopicPresence("room")
			if err == nil && len(room) == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("TopicPresence(room) = %v, %v; want alice's and bob's", room, err)
			}
		}
	}
	bobs, err := servers[0].UserPresence("bob")
	if err != nil || len(bobs) != 1 || bobs[0].Conn != b || bobs[0].UserID != "bob" {
		t.Fatalf("UserPresence(bob) on the other server = %+v, %v; want conn %d", bobs, err, b)
	}

	if err := servers[0].SessionSet("shared", []byte("from 0"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, err := servers[1].SessionGet("shared"); err != nil || string(v) != "from 0" {
		t.Fatalf("SessionGet on the other server = %q, %v", v, err)
	}
	if err := servers[1].SessionDelete("shared"); err != nil {
		t.Fatal(err)
	}
	if _, err := servers[0].SessionGet("shared"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after a delete on the other server: %v, want ErrNotFound", err)
	}
}
