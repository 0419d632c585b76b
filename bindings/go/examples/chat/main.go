// Command chat is the chat demo (examples/chat) in Go: the same page, the
// same protocol, on the wsgate Go binding.
//
//	go run ./examples/chat [--host ADDR] [--port N] [--set KEY=VALUE]...
//
// It serves its page at / and the chat's WebSocket at
// /chat?room=NAME&name=USER. Rooms are topics ("room:NAME"); /who lists a
// room, /msg USER text reaches every connection of USER. With --set
// cluster.redis=HOST:PORT several instances make one chat: /who lists the
// room on every instance and /msg reaches USER wherever connected. Rooms
// keep their last 200 messages (in Redis with a cluster): a page that
// reconnects with &from=EPOCH-OFFSET (the "pos" of the last room message it
// saw) gets what it missed, then the live messages. With --set
// auth.mode=jwt (and the auth.jwt.* options) the user id comes from the
// token. When ready it prints "open http://HOST:PORT/ in a browser";
// SIGINT or SIGTERM stops it gracefully (clients get close 1001, or 1012
// with --set server.drain_ms=N), exit code 0.
package main

//go:generate cp ../../../../examples/chat/index.html index.html

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"wsgate"
)

// The page of examples/chat, copied here (go:embed cannot reach outside
// the module; go generate refreshes it, and a test checks it is the same).
//
//go:embed index.html
var page []byte

// setFlags collects repeated --set KEY=VALUE.
type setFlags map[string]string

func (s setFlags) String() string { return "" }

func (s setFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	s[k] = val
	return nil
}

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	// The chat's defaults, before the command line: the WebSocket lives at
	// /chat, chat messages are small, and a browser can pass a token only
	// in the query.
	cfg := setFlags{
		"server.path":              "/chat",
		"limits.max_message_bytes": "8192",
		"auth.token_sources":       "query",
		// Rooms keep their last messages, so a page that reconnects gets
		// what it missed (?from=): in memory, or in Redis with cluster.redis.
		"cluster.history_topics": "room:*",
		"cluster.history_size":   "200",
	}
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	host := fs.String("host", "", "listen address (same as --set listen.host=ADDR)")
	port := fs.String("port", "", "listen port, 0 = ephemeral (same as --set listen.port=N)")
	fs.Var(cfg, "set", "set any wsgate option, KEY=VALUE (repeatable)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *host != "" {
		cfg["listen.host"] = *host
	}
	if *port != "" {
		cfg["listen.port"] = *port
	}
	if cfg["server.path"] != "/chat" {
		fmt.Fprintf(os.Stderr, "chat: the page connects to /chat: server.path cannot be %q\n", cfg["server.path"])
		return 2
	}
	// auth.mode none becomes callback: the chat names users (?name= or
	// guest-N) so that /msg can reach them by name.
	if mode := cfg["auth.mode"]; mode == "" || mode == "none" {
		cfg["auth.mode"] = "callback"
	}

	opts := wsgate.Options{Config: cfg}
	c := install(&opts)
	s, err := wsgate.NewServer(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		return 2
	}
	defer s.Close()
	if err := c.installHistory(s); err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		return 1
	}
	// A bad room or name gets the same answer every time: the page asks the
	// user rather than retrying (the close-code contract).
	if err := s.SetCloseAdvice(closeBadRoom, closeBadName, wsgate.AdviceNo); err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		return 1
	}
	if err := s.AddPage("/", "text/html; charset=utf-8", page); err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		return 1
	}
	if err := s.Listen(); err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The socket listens already: a browser that connects now waits in the
	// backlog until Run serves it.
	bound, _ := s.Port()
	scheme, h := "http", cfg["listen.host"]
	if cfg["tls.cert_file"] != "" {
		scheme = "https"
	}
	if h == "" || h == "0.0.0.0" || h == "::" {
		h = "localhost"
	}
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	fmt.Printf("open %s://%s:%d/ in a browser\n", scheme, h, bound)
	if err := s.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		return 1
	}
	return 0
}
