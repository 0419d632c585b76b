package wsgate

/*
#include <stdlib.h>
#include <wsgate/wsgate.h>

// WSG_STATUS_MAP as rows, so the tests can check the Go sentinels against
// the C list (statusRows).
typedef struct { const char *name; int value; const char *doc; } wsgo_status_row;
static const wsgo_status_row wsgo_status_rows[] = {
#define WSGO_STATUS_ROW_(name, value, doc) { "WSG_" #name, value, doc },
    WSG_STATUS_MAP(WSGO_STATUS_ROW_)
#undef WSGO_STATUS_ROW_
};
static size_t wsgo_status_count(void) { return sizeof wsgo_status_rows / sizeof *wsgo_status_rows; }
static wsgo_status_row wsgo_status_at(size_t i) { return wsgo_status_rows[i]; }
*/
import "C"

import (
	"runtime"
	"strings"
	"unsafe"
)

// Status is a wsg_status of the C ABI. Every status but OK is an error
// value; the sentinels below are compared with errors.Is:
//
//	if errors.Is(err, wsgate.ErrNotFound) { ... the connection is gone ... }
//
// A status this package does not name (from a newer library) is still a
// Status, with the library's name for it.
type Status int

// One sentinel per entry of WSG_STATUS_MAP (values from the header; a test
// checks that the names cover the whole map).
const (
	OK          Status = C.WSG_OK        // not an error: what a successful call returns
	ErrInvalid  Status = C.WSG_EINVAL    // invalid argument, unknown option or value out of range
	ErrNotFound Status = C.WSG_ENOTFOUND // no such connection (stale or unknown id) or item
	ErrClosed   Status = C.WSG_ECLOSED   // the connection (or the Server) is closing or closed
	ErrNoMemory Status = C.WSG_ENOMEM    // out of memory
	ErrState    Status = C.WSG_ESTATE    // not allowed in the object's current state
	ErrIO       Status = C.WSG_EIO       // system or network error (bind, socket, thread)
	ErrTLS      Status = C.WSG_ETLS      // TLS setup or certificate error
	ErrBusy     Status = C.WSG_EBUSY     // not allowed inside a handler (on the service thread)
	ErrLimit    Status = C.WSG_ELIMIT    // a configured limit was reached
	ErrInternal Status = C.WSG_EINTERNAL // broken internal invariant: please report it
	ErrCluster  Status = C.WSG_ECLUSTER  // the cluster is down (Redis unreachable, hung or refusing): a cross-instance call failed
	ErrTimeout  Status = C.WSG_ETIMEOUT  // gave up waiting: the deadline passed before the result came
)

// sentinels maps each C name to its Go sentinel (checked against the C map).
var sentinels = map[string]Status{
	"WSG_OK": OK, "WSG_EINVAL": ErrInvalid, "WSG_ENOTFOUND": ErrNotFound,
	"WSG_ECLOSED": ErrClosed, "WSG_ENOMEM": ErrNoMemory, "WSG_ESTATE": ErrState,
	"WSG_EIO": ErrIO, "WSG_ETLS": ErrTLS, "WSG_EBUSY": ErrBusy, "WSG_ELIMIT": ErrLimit,
	"WSG_EINTERNAL": ErrInternal, "WSG_ECLUSTER": ErrCluster, "WSG_ETIMEOUT": ErrTimeout,
}

type statusRow struct {
	name  string
	value Status
	doc   string
}

// statusRows is WSG_STATUS_MAP as the loaded header states it.
func statusRows() []statusRow {
	n := int(C.wsgo_status_count())
	rows := make([]statusRow, 0, n)
	for i := 0; i < n; i++ {
		r := C.wsgo_status_at(C.size_t(i))
		rows = append(rows, statusRow{C.GoString(r.name), Status(r.value), C.GoString(r.doc)})
	}
	return rows
}

// String is the library's stable name: "WSG_EBUSY", ...
func (s Status) String() string { return C.GoString(C.wsg_status_str(C.wsg_status(s))) }

// Error describes the status: "WSG_EBUSY: not allowed on the service thread (inside a callback)".
func (s Status) Error() string {
	for _, r := range statusRows() {
		if r.value == s {
			return r.name + ": " + r.doc
		}
	}
	return s.String()
}

// Error is what a failed call returns: the Go operation, the status and
// the core's detail message (wsg_last_error(): it names the option,
// connection or system call involved and what to do). It unwraps to its
// Status, so errors.Is(err, wsgate.ErrBusy) works.
type Error struct {
	Op      string // the method that failed, e.g. "Send"
	Status  Status
	Message string
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Status.Error()
	}
	return "wsgate: " + e.Op + ": " + msg + " (" + e.Status.String() + ")"
}

// Unwrap returns the Status.
func (e *Error) Unwrap() error { return e.Status }

// check turns a status into an error, reading wsg_last_error(). The caller
// holds its goroutine on the OS thread of the call that returned st
// (runtime.LockOSThread): the detail message is thread-local in C.
func check(op string, st C.wsg_status) error {
	if st == C.WSG_OK {
		return nil
	}
	return &Error{Op: op, Status: Status(st), Message: C.GoString(C.wsg_last_error())}
}

// newError is an error found on the Go side (a NUL in a string, a call
// from the wrong place), with the status the core would have used.
func newError(op string, st Status, msg string) error {
	return &Error{Op: op, Status: st, Message: msg}
}

// lock pins the goroutine to its thread for one C call and the read of its
// thread-local error message; unlock with runtime.UnlockOSThread.
func lock() { runtime.LockOSThread() }

// cstring returns s NUL-terminated as Go memory (C only reads it during the
// call), or an ErrInvalid error naming `what` when s holds a NUL.
func cstring(op, what, s string) (*C.char, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, newError(op, ErrInvalid, what+" contains a NUL character")
	}
	b := make([]byte, len(s)+1)
	copy(b, s)
	return (*C.char)(unsafe.Pointer(&b[0])), nil
}
