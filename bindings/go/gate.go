package wsgate

import "sync/atomic"

// gate counts the calls that are using the C server, so Close frees it only
// once none is left, and refuses new ones after that. A count, not a
// sync.RWMutex: a handler may call in while the goroutine that started the
// server (Run) is itself inside a call, and a waiting writer would then
// deadlock the nested reader.
type gate struct {
	n       atomic.Int64
	drained chan struct{} // a leave that may have emptied a closed gate
}

const gateClosed = int64(1) << 62

func newGate() *gate { return &gate{drained: make(chan struct{}, 1)} }

// enter reports whether the server may be used; pair a true with leave.
func (g *gate) enter() bool {
	if g.n.Add(1)&gateClosed != 0 {
		g.leave()
		return false
	}
	return true
}

func (g *gate) leave() {
	if g.n.Add(-1) == gateClosed {
		select {
		case g.drained <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}

// close refuses every later enter and waits for the calls in progress.
func (g *gate) close() {
	for {
		v := g.n.Load()
		if v&gateClosed != 0 || g.n.CompareAndSwap(v, v|gateClosed) {
			break
		}
	}
	for g.n.Load() != gateClosed {
		<-g.drained
	}
}
