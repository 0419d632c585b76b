package wsgate

/*
#include <wsgate/wsgate.h>

// The header's lists as rows (name, value), so the tests can check the Go
// constants against them (enumRows).
typedef struct { const char *name; int value; } wsgo_enum_row;
#define WSGO_ROW4_(name, value, text, doc) { #name, value },
static const wsgo_enum_row wsgo_causes[] = { WSG_CLOSE_CAUSE_MAP(WSGO_ROW4_) };
static const wsgo_enum_row wsgo_advices[] = { WSG_RECONNECT_MAP(WSGO_ROW4_) };
static const wsgo_enum_row wsgo_policies[] = { WSG_QUEUE_POLICY_MAP(WSGO_ROW4_) };
#undef WSGO_ROW4_
static const wsgo_enum_row *wsgo_enum_rows(int which, size_t *n) {
    switch (which) {
    case 0: *n = sizeof wsgo_causes / sizeof *wsgo_causes; return wsgo_causes;
    case 1: *n = sizeof wsgo_advices / sizeof *wsgo_advices; return wsgo_advices;
    default: *n = sizeof wsgo_policies / sizeof *wsgo_policies; return wsgo_policies;
    }
}
*/
import "C"

import "unsafe"

// ConnID names one connection for the life of its Server: never reused,
// never 0. A stale id is harmless: calls taking it return ErrNotFound.
type ConnID uint64

// MessageType is the kind of a data message.
type MessageType int

const (
	TextMessage   MessageType = C.WSG_MSG_TEXT   // UTF-8 text (validated on receive)
	BinaryMessage MessageType = C.WSG_MSG_BINARY // binary
)

func (t MessageType) String() string {
	switch t {
	case TextMessage:
		return "text"
	case BinaryMessage:
		return "binary"
	}
	return "unknown"
}

// Cause is why a connection ended (WSG_CLOSE_CAUSE_MAP).
type Cause int

const (
	CausePeer           Cause = C.WSG_CAUSE_PEER
	CauseApp            Cause = C.WSG_CAUSE_APP
	CauseShutdown       Cause = C.WSG_CAUSE_SHUTDOWN
	CauseLost           Cause = C.WSG_CAUSE_LOST
	CauseTooBig         Cause = C.WSG_CAUSE_TOO_BIG
	CauseInvalidUTF8    Cause = C.WSG_CAUSE_INVALID_UTF8
	CauseBackpressure   Cause = C.WSG_CAUSE_BACKPRESSURE
	CausePongTimeout    Cause = C.WSG_CAUSE_PONG_TIMEOUT
	CauseWriteTimeout   Cause = C.WSG_CAUSE_WRITE_TIMEOUT
	CauseIdleTimeout    Cause = C.WSG_CAUSE_IDLE_TIMEOUT
	CauseCloseTimeout   Cause = C.WSG_CAUSE_CLOSE_TIMEOUT
	CauseTokenExpired   Cause = C.WSG_CAUSE_TOKEN_EXPIRED
	CauseRateLimit      Cause = C.WSG_CAUSE_RATE_LIMIT
	CauseBadCompression Cause = C.WSG_CAUSE_BAD_COMPRESSION
	CauseProtocolError  Cause = C.WSG_CAUSE_PROTOCOL_ERROR
	CauseDrain          Cause = C.WSG_CAUSE_DRAIN
)

// String is the cause's stable name: "peer", "app", "drain", ...
func (c Cause) String() string { return C.GoString(C.wsg_close_cause_str(C.wsg_close_cause(c))) }

// Advice is what a client should do after a close code (WSG_RECONNECT_MAP).
type Advice int

const (
	AdviceBackoff Advice = C.WSG_RECONNECT_BACKOFF // reconnect after a growing, jittered delay
	AdviceNo      Advice = C.WSG_RECONNECT_NO      // do not reconnect until something changes
	AdviceApp     Advice = C.WSG_RECONNECT_APP     // the application's protocol decides
)

// String is the advice's stable name: "backoff", "no", "app".
func (a Advice) String() string { return C.GoString(C.wsg_reconnect_str(C.wsg_reconnect(a))) }

// QueuePolicy is what a send queue does with a message that does not fit
// (WSG_QUEUE_POLICY_MAP; the option limits.queue_policy).
type QueuePolicy int

const (
	QueueClose      QueuePolicy = C.WSG_QUEUE_CLOSE
	QueueDropNewest QueuePolicy = C.WSG_QUEUE_DROP_NEWEST
	QueueDropOldest QueuePolicy = C.WSG_QUEUE_DROP_OLDEST
	QueueConflate   QueuePolicy = C.WSG_QUEUE_CONFLATE
)

// String is the policy's stable name: "close", "drop_newest", ...
func (p QueuePolicy) String() string {
	return C.GoString(C.wsg_queue_policy_str(C.wsg_queue_policy(p)))
}

// LogLevel is a log event's severity (the values of the option log.level).
type LogLevel int

const (
	LogDebug LogLevel = C.WSG_LOG_DEBUG
	LogInfo  LogLevel = C.WSG_LOG_INFO
	LogWarn  LogLevel = C.WSG_LOG_WARN
	LogError LogLevel = C.WSG_LOG_ERROR
)

func (l LogLevel) String() string {
	switch l {
	case LogDebug:
		return "debug"
	case LogInfo:
		return "info"
	case LogWarn:
		return "warn"
	case LogError:
		return "error"
	}
	return "unknown"
}

// CloseEvent is how a connection ended, as OnClose receives it.
type CloseEvent struct {
	Code   int    // the close code (1006 when there was no close frame)
	Reason string // the close reason, "" if none
	Cause  Cause  // why it ended
	Advice Advice // what its client should do now (the close-code contract)
}

// LogEvent is one structured log event, as OnLog receives it.
type LogEvent struct {
	Level LogLevel
	Event string // its name: the README's log-event table lists them
	JSON  []byte // the whole event as one JSON object
}

type enumRow struct {
	name  string
	value int
}

// enumRows is one of the header's lists: 0 causes, 1 advices, 2 queue policies.
func enumRows(which int) []enumRow {
	var n C.size_t
	p := C.wsgo_enum_rows(C.int(which), &n)
	rows := make([]enumRow, 0, int(n))
	for _, r := range unsafe.Slice(p, int(n)) {
		rows = append(rows, enumRow{C.GoString(r.name), int(r.value)})
	}
	return rows
}
