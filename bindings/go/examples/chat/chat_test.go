package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

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
func startChat(t *testing.T) (*exec.Cmd, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "--host", "127.0.0.1", "--port", "0",
		"--set", "server.shutdown_timeout_ms=500", "--set", "log.level=error")
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
	expect(t, alice, msg{"type": "join", "user": "alice", "room": "go"})
	bob := join(t, port, "/chat?room=go&name=bob")
	expect(t, bob, msg{"type": "welcome", "user": "bob", "room": "go"})
	expect(t, bob, msg{"type": "join", "user": "bob", "room": "go"})
	expect(t, alice, msg{"type": "join", "user": "bob", "room": "go"})

	alice.SendText("hello, bob")
	hello := msg{"type": "message", "user": "alice", "room": "go", "text": "hello, bob"}
	expect(t, alice, hello)
	expect(t, bob, hello)

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
	expect(t, alice, msg{"type": "leave", "user": "bob", "room": "go"})

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
