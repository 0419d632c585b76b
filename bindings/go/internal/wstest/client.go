// Package wstest is a minimal WebSocket client for the binding's tests and
// the examples' tests (Go's standard library has none): the RFC 6455
// handshake, masked frames out, whole messages in. Not for production use.
package wstest

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

const (
	OpText   = 1
	OpBinary = 2
	OpClose  = 8
	OpPing   = 9
	OpPong   = 10
)

type Conn struct {
	conn net.Conn
	r    *bufio.Reader
}

// Dial opens a WebSocket to 127.0.0.1:port at target ("/path?query").
// A refused upgrade returns an error naming the HTTP status.
func Dial(port int, target string) (*Conn, error) {
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	keyBytes := make([]byte, 16)
	_, _ = rand.Read(keyBytes)
	key := base64.StdEncoding.EncodeToString(keyBytes)
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", target, port, key)
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		return nil, fmt.Errorf("upgrade refused: HTTP %d", resp.StatusCode)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		conn.Close()
		return nil, fmt.Errorf("bad Sec-WebSocket-Accept %q", resp.Header.Get("Sec-WebSocket-Accept"))
	}
	return &Conn{conn: conn, r: r}, nil
}

// WriteFrame sends one final, masked frame.
func (c *Conn) WriteFrame(op byte, payload []byte) error {
	hdr := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n < 1<<16:
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	hdr = append(hdr, mask[:]...)
	masked := make([]byte, len(payload))
	for i, b := range payload {
		masked[i] = b ^ mask[i%4]
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.conn.Write(append(hdr, masked...))
	return err
}

func (c *Conn) SendText(s string) error { return c.WriteFrame(OpText, []byte(s)) }

// ReadMessage returns the next data message (fragments joined), answering
// pings; a close frame returns op OpClose with its payload.
func (c *Conn) ReadMessage(timeout time.Duration) (op byte, data []byte, err error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	var msgOp byte
	var msg []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.r, h[:]); err != nil {
			return 0, nil, err
		}
		fin, fop := h[0]&0x80 != 0, h[0]&0x0f
		n := uint64(h[1] & 0x7f)
		if h[1]&0x80 != 0 {
			return 0, nil, fmt.Errorf("the server sent a masked frame")
		}
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(c.r, b[:]); err != nil {
				return 0, nil, err
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(c.r, b[:]); err != nil {
				return 0, nil, err
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(c.r, payload); err != nil {
			return 0, nil, err
		}
		switch fop {
		case OpPing:
			if err := c.WriteFrame(OpPong, payload); err != nil {
				return 0, nil, err
			}
			continue
		case OpPong:
			continue
		case OpClose:
			return OpClose, payload, nil
		case 0: // continuation
		default:
			msgOp = fop
		}
		msg = append(msg, payload...)
		if fin {
			return msgOp, msg, nil
		}
	}
}

// ReadText returns the next message, which must be text.
func (c *Conn) ReadText() (string, error) {
	op, data, err := c.ReadMessage(10 * time.Second)
	if err != nil {
		return "", err
	}
	if op != OpText {
		return "", fmt.Errorf("got opcode %d (%q), want a text message", op, data)
	}
	return string(data), nil
}

// ReadClose reads until the server's close frame, answers it (the close
// handshake) and returns its code and reason.
func (c *Conn) ReadClose() (int, string, error) {
	for {
		op, data, err := c.ReadMessage(10 * time.Second)
		if err != nil {
			return 0, "", err
		}
		if op == OpClose {
			code := 1005
			if len(data) >= 2 {
				code = int(binary.BigEndian.Uint16(data))
				data = data[2:]
			}
			_ = c.WriteFrame(OpClose, binary.BigEndian.AppendUint16(nil, uint16(code)))
			return code, string(data), nil
		}
	}
}

// CloseWith sends a close frame and waits for the server's answer.
func (c *Conn) CloseWith(code int, reason string) error {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	if err := c.WriteFrame(OpClose, append(p, reason...)); err != nil {
		return err
	}
	for {
		op, _, err := c.ReadMessage(10 * time.Second)
		if err != nil || op == OpClose {
			c.conn.Close()
			return err
		}
	}
}

func (c *Conn) Close() { c.conn.Close() }
