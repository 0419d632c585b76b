package wsgate

/*
#include <wsgate/wsgate.h>
*/
import "C"

import "time"

// ConnInfo is a snapshot of one connection's facts and counters.
type ConnInfo struct {
	ID              ConnID
	PeerAddr        string // peer IP ("127.0.0.1", "::1")
	PeerPort        int
	Path            string // request path without the query
	Query           string // the query as sent (percent-encoded, no '?'), access_token removed
	Origin          string // "" if none
	Subprotocol     string // agreed subprotocol, "" if none
	TLSSubject      string // verified client certificate subject, "" if none
	UserID          string // authenticated user id, "" if none
	Claims          string // the verified JWT's claims as JSON, "" without a JWT
	ConnectedAt     time.Time
	Duration        time.Duration // connected for, when the snapshot was taken
	MessagesIn      int64
	BytesIn         int64
	MessagesOut     int64 // queued to it (those a queue policy dropped included)
	BytesOut        int64
	MessagesDropped int64         // dropped by the queue policy
	QueuedBytes     int64         // waiting in its send queue
	RTT             time.Duration // latest ping round trip, -1 before the first pong
	Compression     bool          // permessage-deflate negotiated
	QueuePolicy     QueuePolicy
	Topics          []string // its subscriptions
}

// ConnInfo takes a snapshot of c. ErrNotFound when c is gone.
func (s *Server) ConnInfo(c ConnID) (ConnInfo, error) {
	done, err := s.use("ConnInfo")
	if err != nil {
		return ConnInfo{}, err
	}
	defer done()
	var info *C.wsg_conn_info
	if err := check("ConnInfo", C.wsg_conn_info_get(s.ptr, C.wsg_conn_id(c), &info)); err != nil {
		return ConnInfo{}, err
	}
	defer C.wsg_conn_info_free(info)
	str := func(k C.wsg_info_key) string {
		var v *C.char
		if C.wsg_conn_info_string(info, k, &v) != C.WSG_OK {
			return ""
		}
		return C.GoString(v)
	}
	num := func(k C.wsg_info_key) int64 {
		var v C.int64_t
		if C.wsg_conn_info_int(info, k, &v) != C.WSG_OK {
			return 0
		}
		return int64(v)
	}
	ci := ConnInfo{
		ID:              ConnID(num(C.WSG_INFO_ID)),
		PeerAddr:        str(C.WSG_INFO_PEER_ADDR),
		PeerPort:        int(num(C.WSG_INFO_PEER_PORT)),
		Path:            str(C.WSG_INFO_PATH),
		Query:           str(C.WSG_INFO_QUERY),
		Origin:          str(C.WSG_INFO_ORIGIN),
		Subprotocol:     str(C.WSG_INFO_SUBPROTOCOL),
		TLSSubject:      str(C.WSG_INFO_TLS_SUBJECT),
		UserID:          str(C.WSG_INFO_USER_ID),
		Claims:          str(C.WSG_INFO_CLAIMS),
		ConnectedAt:     time.UnixMilli(num(C.WSG_INFO_CONNECTED_AT_MS)),
		Duration:        time.Duration(num(C.WSG_INFO_DURATION_MS)) * time.Millisecond,
		MessagesIn:      num(C.WSG_INFO_MESSAGES_IN),
		BytesIn:         num(C.WSG_INFO_BYTES_IN),
		MessagesOut:     num(C.WSG_INFO_MESSAGES_OUT),
		BytesOut:        num(C.WSG_INFO_BYTES_OUT),
		MessagesDropped: num(C.WSG_INFO_MESSAGES_DROPPED),
		QueuedBytes:     num(C.WSG_INFO_QUEUED_BYTES),
		Compression:     num(C.WSG_INFO_COMPRESSION) != 0,
		QueuePolicy:     QueuePolicy(num(C.WSG_INFO_QUEUE_POLICY)),
		RTT:             -1,
	}
	if rtt := num(C.WSG_INFO_RTT_US); rtt >= 0 {
		ci.RTT = time.Duration(rtt) * time.Microsecond
	}
	var nt C.size_t
	if C.wsg_conn_info_topic_count(info, &nt) == C.WSG_OK {
		ci.Topics = make([]string, 0, int(nt))
		for i := C.size_t(0); i < nt; i++ {
			var t *C.char
			if C.wsg_conn_info_topic(info, i, &t) == C.WSG_OK {
				ci.Topics = append(ci.Topics, C.GoString(t))
			}
		}
	}
	return ci, nil
}
