package wsgate

/*
#include <wsgate/wsgate.h>
#include "trampolines.h"
*/
import "C"

import (
	"runtime"
	"sync/atomic"
)

// AuthRequest is an upgrade request that OnAuth decides. It is valid only
// during that OnAuth call and only in its goroutine; afterwards, or from
// another goroutine, every method returns ErrState.
type AuthRequest struct {
	req  *C.wsg_auth_request
	done atomic.Bool // set when the OnAuth call returned
}

// here pins the goroutine to its thread and checks that it is the OnAuth
// call's own; unlock with runtime.UnlockOSThread when err is nil.
func (r *AuthRequest) here(op string) error {
	if r.done.Load() {
		return newError(op, ErrState, "the AuthRequest is no longer valid: use it only during its OnAuth call")
	}
	lock()
	if C.wsgo_auth_here(r.req) == 0 {
		runtime.UnlockOSThread()
		return newError(op, ErrState, "an AuthRequest can only be used by the OnAuth call that received it, on its goroutine")
	}
	return nil
}

func (r *AuthRequest) field(op string, f C.wsg_auth_field) string {
	if r.here(op) != nil {
		return ""
	}
	defer runtime.UnlockOSThread()
	var v *C.char
	if C.wsg_auth_request_get(r.req, f, &v) != C.WSG_OK {
		return ""
	}
	return C.GoString(v)
}

// Path is the request path without the query.
func (r *AuthRequest) Path() string { return r.field("Path", C.WSG_AUTH_PATH) }

// Query is the query as sent (percent-encoded, no '?'), access_token removed.
func (r *AuthRequest) Query() string { return r.field("Query", C.WSG_AUTH_QUERY) }

// PeerAddr is the peer's IP address.
func (r *AuthRequest) PeerAddr() string { return r.field("PeerAddr", C.WSG_AUTH_PEER_ADDR) }

// Origin is the Origin header, "" if none.
func (r *AuthRequest) Origin() string { return r.field("Origin", C.WSG_AUTH_ORIGIN) }

// TLSSubject is the verified client certificate's subject, "" if none.
func (r *AuthRequest) TLSSubject() string { return r.field("TLSSubject", C.WSG_AUTH_TLS_SUBJECT) }

// Token is the token found in auth.token_sources, "" if none.
func (r *AuthRequest) Token() string { return r.field("Token", C.WSG_AUTH_TOKEN) }

// JWTUser is the verified JWT's user id (auth.mode=jwt+callback), else "".
func (r *AuthRequest) JWTUser() string { return r.field("JWTUser", C.WSG_AUTH_JWT_USER) }

// JWTClaims is the verified JWT's claims as JSON (auth.mode=jwt+callback), else "".
func (r *AuthRequest) JWTClaims() string { return r.field("JWTClaims", C.WSG_AUTH_JWT_CLAIMS) }

// Header reads a request header (case-insensitive name; repeated headers
// joined with ", "); ok is false when it is absent.
func (r *AuthRequest) Header(name string) (value string, ok bool) {
	n, err := cstring("Header", "header name", name)
	if err != nil || r.here("Header") != nil {
		return "", false
	}
	defer runtime.UnlockOSThread()
	var v *C.char
	if C.wsg_auth_request_header(r.req, n, &v) != C.WSG_OK {
		return "", false
	}
	return C.GoString(v), true
}

// Accept accepts the request as userID; "" keeps the JWT's user id in
// jwt+callback mode, or none.
func (r *AuthRequest) Accept(userID string) error {
	var u *C.char
	if userID != "" {
		var err error
		if u, err = cstring("Accept", "user id", userID); err != nil {
			return err
		}
	}
	if err := r.here("Accept"); err != nil {
		return err
	}
	defer runtime.UnlockOSThread()
	return check("Accept", C.wsg_auth_accept(r.req, u))
}

// Refuse refuses the request with HTTP status 401 or 403; reason is
// logged (the client sees only a generic body).
func (r *AuthRequest) Refuse(status int, reason string) error {
	rs, err := cstring("Refuse", "refusal reason", reason)
	if err != nil {
		return err
	}
	if err := r.here("Refuse"); err != nil {
		return err
	}
	defer runtime.UnlockOSThread()
	return check("Refuse", C.wsg_auth_refuse(r.req, C.int(status), rs))
}

// SetTimeout gives the connection about to open its own heartbeat value
// (the keys of Server.SetConnTimeout).
func (r *AuthRequest) SetTimeout(key string, value int64) error {
	k, err := cstring("SetTimeout", "timeout key", key)
	if err != nil {
		return err
	}
	if err := r.here("SetTimeout"); err != nil {
		return err
	}
	defer runtime.UnlockOSThread()
	return check("SetTimeout", C.wsg_auth_set_timeout(r.req, k, C.int64_t(value)))
}
