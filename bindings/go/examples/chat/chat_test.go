package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"wsgate"
	"wsgate/internal/wstest"
)

// The test binary doubles as the chat program: run with this variable set,
// it runs main's code on its arguments (the real flags, signals and exit code).
const runMainEnv = "WSGATE_GO_CHAT_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func TestPageIsTheDemoPage(t *testing.T) {
	want, err := os.ReadFile("../../../../examples/chat/index.html")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(page, want) {
		t.Fatal("index.html differs from examples/chat/index.html: run go generate ./examples/chat")
	}
}

// startChat runs the program and returns its port; it gets SIGTERM when
// the test ends unless the test stopped it.
func startChat(t *testing.T, extra ...string) (*exec.Cmd, int) {
	t.Helper()
	args := append([]string{"--host", "127.0.0.1", "--port", "0",
		"--set", "server.shutdown_timeout_ms=500", "--set", "log.level=error"}, extra...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	m := regexp.MustCompile(`^open http://127\.0\.0\.1:(\d+)/ in a browser\n$`).FindStringSubmatch(line)
	if err != nil || m == nil {
		t.Fatalf("first line %q, %v", line, err)
	}
	port, _ := strconv.Atoi(m[1])
	go io.Copy(io.Discard, out)
	return cmd, port
}

type msg map[string]any

func join(t *testing.T, port int, target string) *wstest.Conn {
	t.Helper()
	c, err := wstest.Dial(port, target)
	if err != nil {
		t.Fatalf("dial %s: %v", target, err)
	}
	t.Cleanup(c.Close)
	return c
}

func expect(t *testing.T, c *wstest.Conn, want msg) {
	t.Helper()
	s, err := c.ReadText()
	if err != nil {
		t.Fatalf("waiting for %v: %v", want, err)
	}
	var got msg
	if err := json.Unmarshal([]byte(s), &got); err != nil {
		t.Fatalf("not JSON: %q", s)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// expectRoom reads a room message: the history hook put its position
// first, as "pos" (EPOCH-OFFSET); the rest must be want. Its position.
func expectRoom(t *testing.T, c *wstest.Conn, want msg) wsgate.Position {
	t.Helper()
	s, err := c.ReadText()
	if err != nil {
		t.Fatalf("waiting for %v: %v", want, err)
	}
	if !strings.HasPrefix(s, `{"pos":"`) {
		t.Fatalf("%q does not start with its position", s)
	}
	var got msg
	if err := json.Unmarshal([]byte(s), &got); err != nil {
		t.Fatalf("not JSON: %q", s)
	}
	text, _ := got["pos"].(string)
	pos, err := wsgate.ParsePosition(text)
	if err != nil || pos.Epoch == 0 {
		t.Fatalf("%q: pos is no position: %v", s, err)
	}
	delete(got, "pos")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	return pos
}

func TestChatBetweenTwoClients(t *testing.T) {
	cmd, port := startChat(t)

	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, page) || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}

	alice := join(t, port, "/chat?room=go&name=alice")
	expect(t, alice, msg{"type": "welcome", "user": "alice", "room": "go"})
	expectRoom(t, alice, msg{"type": "join", "user": "alice", "room": "go"})
	bob := join(t, port, "/chat?room=go&name=bob")
	expect(t, bob, msg{"type": "welcome", "user": "bob", "room": "go"})
	expectRoom(t, bob, msg{"type": "join", "user": "bob", "room": "go"})
	expectRoom(t, alice, msg{"type": "join", "user": "bob", "room": "go"})

	alice.SendText("hello, bob")
	hello := msg{"type": "message", "user": "alice", "room": "go", "text": "hello, bob"}
	expectRoom(t, alice, hello)
	expectRoom(t, bob, hello)

	bob.SendText("/msg alice just  you")
	direct := msg{"type": "direct", "from": "bob", "to": "alice", "text": "just  you"}
	expect(t, alice, direct)
	expect(t, bob, direct)
	bob.SendText("/msg carol hi")
	expect(t, bob, msg{"type": "error", "text": "carol is not online"})
	bob.SendText("/who")
	expect(t, bob, msg{"type": "who", "room": "go", "users": []any{"alice", "bob"}})

	bad := join(t, port, "/chat?room=no%20spaces&name=x")
	if code, _, err := bad.ReadClose(); err != nil || code != 4001 {
		t.Fatalf("bad room: close %d, %v; want 4001", code, err)
	}
	guest := join(t, port, "/chat")
	expect(t, guest, msg{"type": "welcome", "user": "guest-1", "room": "lobby"})

	bob.CloseWith(1000, "")
	expectRoom(t, alice, msg{"type": "leave", "user": "bob", "room": "go"})

	// SIGTERM: a graceful stop, clients get 1001, exit code 0.
	cmd.Process.Signal(syscall.SIGTERM)
	if code, _, err := alice.ReadClose(); err != nil || code != 1001 {
		t.Fatalf("on SIGTERM: close %d, %v; want 1001", code, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after SIGTERM")
	}
}

// startRedis runs a redis-server of its own on a unix socket in a temporary
// directory (no port to collide with) and returns the socket's path; it is
// killed when the test ends.
func startRedis(t *testing.T) (string, *exec.Cmd) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("no redis-server on PATH (Debian: redis-server)")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "redis.sock")
	cmd := exec.Command(bin, "--port", "0", "--unixsocket", sock, "--dir", dir, "--save", "",
		"--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			return sock, cmd
		}
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not create its socket in 10 s")
		}
	}
}

// expectType reads until a message of type typ (others, such as joins
// relayed from the other instance, are skipped) and returns it.
func expectType(t *testing.T, c *wstest.Conn, typ string) msg {
	t.Helper()
	for i := 0; i < 50; i++ {
		s, err := c.ReadText()
		if err != nil {
			t.Fatalf("waiting for a %q message: %v", typ, err)
		}
		var got msg
		if err := json.Unmarshal([]byte(s), &got); err != nil {
			t.Fatalf("not JSON: %q", s)
		}
		if got["type"] == typ {
			return got
		}
	}
	t.Fatalf("no %q message among 50", typ)
	return nil
}

// Two instances over one Redis: /who lists the room on both (presence),
// /msg reaches a user on the other and says "not online" for nobody; with
// Redis gone /who lists this instance's users and says so.
func TestChatAcrossTwoInstances(t *testing.T) {
	sock, redis := startRedis(t)
	_, port1 := startChat(t, "--set", "cluster.redis=unix:"+sock)
	_, port2 := startChat(t, "--set", "cluster.redis=unix:"+sock)
	alice := join(t, port1, "/chat?room=go&name=alice")
	expectType(t, alice, "welcome")
	bob := join(t, port2, "/chat?room=go&name=bob")
	expectType(t, bob, "welcome")

	// Each instance writes its presence when it has its node number: ask
	// until both users are listed.
	both := []any{"alice", "bob"}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		alice.SendText("/who")
		got := expectType(t, alice, "who")
		if reflect.DeepEqual(got["users"], both) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/who on instance 1 lists %v, want %v", got["users"], both)
		}
	}
	bob.SendText("/who")
	if got := expectType(t, bob, "who"); !reflect.DeepEqual(got, msg{"type": "who", "room": "go", "users": both}) {
		t.Fatalf("/who on instance 2: %v", got)
	}

	bob.SendText("/msg alice across")
	direct := msg{"type": "direct", "from": "bob", "to": "alice", "text": "across"}
	if got := expectType(t, alice, "direct"); !reflect.DeepEqual(got, direct) {
		t.Fatalf("alice got %v, want %v", got, direct)
	}
	if got := expectType(t, bob, "direct"); !reflect.DeepEqual(got, direct) {
		t.Fatalf("bob's copy: %v, want %v", got, direct)
	}
	bob.SendText("/msg carol hi")
	if got := expectType(t, bob, "error"); got["text"] != "carol is not online" {
		t.Fatalf("/msg to nobody: %v", got)
	}

	// Room messages have positions in the shared history: a page that
	// comes back on the other instance gets there what it missed, each
	// once and in order (its own leave among them), up to its new join.
	carol := join(t, port2, "/chat?room=go&name=carol")
	expectType(t, carol, "welcome")
	bob.SendText("seen")
	seen := expectType(t, carol, "message")
	from, err := wsgate.ParsePosition(fmt.Sprint(seen["pos"]))
	if err != nil || seen["text"] != "seen" {
		t.Fatalf("carol's last message %v: %v", seen, err)
	}
	carol.CloseWith(1000, "")
	if got := expectType(t, bob, "leave"); got["user"] != "carol" {
		t.Fatalf("bob got %v, want carol's leave", got)
	}
	bob.SendText("missed")
	// Back once "missed" is in the history (bob got it): then it comes before the new join.
	if got := expectType(t, bob, "message"); got["text"] != "missed" {
		t.Fatalf("bob got %v, want his missed message", got)
	}
	back := join(t, port1, "/chat?room=go&name=carol&from="+from.String())
	expect(t, back, msg{"type": "welcome", "user": "carol", "room": "go"})
	var replayed []string
	for p := from; ; {
		s, err := back.ReadText()
		if err != nil {
			t.Fatalf("replay after %v: %v", p, err)
		}
		var got msg
		json.Unmarshal([]byte(s), &got)
		q, err := wsgate.ParsePosition(fmt.Sprint(got["pos"]))
		if err != nil || q != (wsgate.Position{Epoch: from.Epoch, Offset: p.Offset + 1}) {
			t.Fatalf("%q after %v: want the next position", s, p)
		}
		p = q
		replayed = append(replayed, fmt.Sprint(got["type"], " ", got["user"], " ", got["text"]))
		if got["type"] == "join" && got["user"] == "carol" {
			break
		}
	}
	if want := []string{"leave carol <nil>", "message bob missed", "join carol <nil>"}; !reflect.DeepEqual(replayed, want) {
		t.Fatalf("replayed %q, want %q", replayed, want)
	}

	// Redis gone: this instance's users, and why the list is short.
	redis.Process.Kill()
	redis.Wait()
	bob.SendText("/who")
	if got := expectType(t, bob, "who"); !reflect.DeepEqual(got["users"], []any{"bob"}) {
		t.Fatalf("/who with Redis down: %v, want bob alone", got)
	}
	if got := expectType(t, bob, "error"); !strings.HasPrefix(got["text"].(string), "only this server's users are listed: ") {
		t.Fatalf("/who with Redis down says %v", got)
	}
	// And a page that comes back now is told its missed messages are not shown.
	late := join(t, port2, "/chat?room=go&name=dave&from="+from.String())
	expect(t, late, msg{"type": "welcome", "user": "dave", "room": "go"})
	if got := expectType(t, late, "error"); got["text"] != "history unavailable (cluster down): missed messages are not shown" {
		t.Fatalf("resuming with Redis down: %v", got)
	}
	// Then its own join, published once the answer came (no pos: Redis is down).
	expect(t, late, msg{"type": "join", "user": "dave", "room": "go"})
	// A room message has no position while Redis is down: it carries no
	// "pos", so a page keeps the last real one (0-0 would replay it all).
	bob.SendText("while down")
	if got := expectType(t, late, "message"); got["text"] != "while down" || got["pos"] != nil {
		t.Fatalf("a message while Redis is down: %v, want no pos", got)
	}
}

// The resume protocol: a page that reconnects with from= (the pos of the
// last room message it saw) gets what it missed once, in order, then the
// live messages; a from that does not parse, or one the history no longer
// holds, gets its error line after the welcome, then its own join and the
// live messages.
func TestChatResumesFromAPosition(t *testing.T) {
	_, port := startChat(t)
	alice := join(t, port, "/chat?room=r&name=alice")
	expect(t, alice, msg{"type": "welcome", "user": "alice", "room": "r"})
	p := expectRoom(t, alice, msg{"type": "join", "user": "alice", "room": "r"})
	E := p.Epoch
	next := func(c *wstest.Conn, want msg) {
		t.Helper()
		got := expectRoom(t, c, want)
		if got != (wsgate.Position{Epoch: E, Offset: p.Offset + 1}) {
			t.Fatalf("%v after %v: positions go up by one in one epoch", got, p)
		}
		p = got
	}
	bob := join(t, port, "/chat?room=r&name=bob")
	expect(t, bob, msg{"type": "welcome", "user": "bob", "room": "r"})
	expectRoom(t, bob, msg{"type": "join", "user": "bob", "room": "r"})
	next(alice, msg{"type": "join", "user": "bob", "room": "r"})
	bob.SendText("before")
	expectRoom(t, bob, msg{"type": "message", "user": "bob", "room": "r", "text": "before"})
	next(alice, msg{"type": "message", "user": "bob", "room": "r", "text": "before"})
	bobSaw := p
	bob.CloseWith(1000, "")
	next(alice, msg{"type": "leave", "user": "bob", "room": "r"})
	for _, m := range []string{"missed 1", "missed 2"} {
		alice.SendText(m)
		next(alice, msg{"type": "message", "user": "alice", "room": "r", "text": m})
	}

	// Back from where it was: its leave, the two missed messages and its
	// new join (published as it opened), each once and in order, then live.
	bob = join(t, port, "/chat?room=r&name=bob&from="+bobSaw.String())
	expect(t, bob, msg{"type": "welcome", "user": "bob", "room": "r"})
	p = bobSaw
	next(bob, msg{"type": "leave", "user": "bob", "room": "r"})
	next(bob, msg{"type": "message", "user": "alice", "room": "r", "text": "missed 1"})
	next(bob, msg{"type": "message", "user": "alice", "room": "r", "text": "missed 2"})
	next(bob, msg{"type": "join", "user": "bob", "room": "r"})
	expectRoom(t, alice, msg{"type": "join", "user": "bob", "room": "r"})
	alice.SendText("live")
	next(bob, msg{"type": "message", "user": "alice", "room": "r", "text": "live"})
	if op, data, err := bob.ReadMessage(200 * time.Millisecond); err == nil {
		t.Fatalf("one message too many: op %d %q", op, data)
	}

	// A from that does not parse: the error line, then live messages only.
	carol := join(t, port, "/chat?room=r&name=carol&from=12-x")
	expect(t, carol, msg{"type": "welcome", "user": "carol", "room": "r"})
	expect(t, carol, msg{"type": "error", "text": "bad from position: live messages only"})
	expectRoom(t, carol, msg{"type": "join", "user": "carol", "room": "r"})

	// A position of another epoch (say, the history was lost): gone.
	gone := wsgate.Position{Epoch: E ^ 2, Offset: 1}
	dave := join(t, port, "/chat?room=r&name=dave&from="+gone.String())
	expect(t, dave, msg{"type": "welcome", "user": "dave", "room": "r"})
	expect(t, dave, msg{"type": "error", "text": "some missed messages are no longer kept: you may have missed messages before this point"})
	// Its own join comes after the error line: the room hears of it once the answer came.
	expectRoom(t, dave, msg{"type": "join", "user": "dave", "room": "r"})
	alice.SendText("after")
	expectRoom(t, dave, msg{"type": "message", "user": "alice", "room": "r", "text": "after"})
}

// Rooms without history (cluster.history_topics set without them): a page
// that comes back is subscribed live and told so, as the C chat does, then
// its join.
func TestChatResumesWithoutHistory(t *testing.T) {
	_, port := startChat(t, "--set", "cluster.history_topics=other:*")
	eve := join(t, port, "/chat?room=r&name=eve&from=1-1")
	expect(t, eve, msg{"type": "welcome", "user": "eve", "room": "r"})
	expect(t, eve, msg{"type": "error", "text": "this server keeps no history of the room: missed messages are not shown"})
	expect(t, eve, msg{"type": "join", "user": "eve", "room": "r"})
}
