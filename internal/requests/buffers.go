package requests

import (
	"sync"

	"github.com/kinesis-streams-go/fluent-bit-kinesis/kinesis/limits"
)

// maxKeptBuf bounds a request buffer kept between requests: a full request and one record.
const maxKeptBuf = 2 * limits.MaxRequestBytes

// Buffers keeps the idle request buffers of a pool, for its flushes' requests. It is safe for
// concurrent use.
type Buffers struct {
	mu     sync.Mutex
	idle   [][]byte
	max    int
	closed bool
}

// NewBuffers keeps at most maxIdle buffers idle.
func NewBuffers(maxIdle int) *Buffers { return &Buffers{max: maxIdle} }

// get returns an empty request buffer, from the idle ones if there is one.
func (p *Buffers) get() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.idle); n > 0 {
		buf := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		return buf
	}
	return nil
}

// put keeps buf for another request, unless enough are idle or it is too large to keep, each at
// most maxKeptBuf.
func (p *Buffers) put(buf []byte) {
	if buf == nil || cap(buf) > maxKeptBuf {
		return
	}
	p.mu.Lock()
	if len(p.idle) < p.max && !p.closed {
		p.idle = append(p.idle, buf[:0])
	}
	p.mu.Unlock()
}

// Close drops the idle buffers and keeps none from now on.
func (p *Buffers) Close() {
	p.mu.Lock()
	p.closed, p.idle = true, nil
	p.mu.Unlock()
}
