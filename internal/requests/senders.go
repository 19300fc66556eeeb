package requests

import (
	"sync"
	"time"
)

// Senders run the requests of a pool's flushes: goroutines kept between requests, each ending
// after senderIdle without one. A request's goroutine calls PutRecords, whose stack (the HTTP
// client, TLS, the socket) is a few times the size a new goroutine starts with: in real Fluent
// Bit, growing a new goroutine's stack for each request cost about 4% of the plugin's CPU.
// Handing a request to an idle sender costs what starting a goroutine does (both make one
// runnable). It is safe for concurrent use.
type Senders struct {
	work      chan func() // unbuffered: a send succeeds only to an idle sender
	done      chan struct{}
	closeOnce sync.Once
}

// senderIdle is how long a sender waits for a request before it ends.
const senderIdle = 10 * time.Second

// NewSenders returns a pool of senders, none started yet.
func NewSenders() *Senders { return &Senders{work: make(chan func()), done: make(chan struct{})} }

// Close ends the idle senders, and each busy one when its request is done. Requests run after
// Close still run, each on a goroutine that ends with it.
func (p *Senders) Close() { p.closeOnce.Do(func() { close(p.done) }) }

// run calls f on an idle sender, or on a new one when none is idle (on a goroutine of its own
// when p is nil). It does not wait for f.
func (p *Senders) run(f func()) {
	if p == nil {
		go f()
		return
	}
	select {
	case p.work <- f:
	default:
		go p.loop(f)
	}
}

func (p *Senders) loop(f func()) {
	idle := time.NewTimer(senderIdle)
	defer idle.Stop()
	for {
		f()
		f = nil // do not keep its request alive while idle
		idle.Reset(senderIdle)
		select {
		case f = <-p.work:
		case <-idle.C:
			return
		case <-p.done:
			return
		}
	}
}
