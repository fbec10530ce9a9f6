package ingest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goccy/go-json"
)

// Connection limits: every connection, a WebSocket included, holds buffers and a
// goroutine, so Serve caps how many are open at once (Config.MaxConnections) and,
// optionally, how many one peer address holds (Config.MaxConnectionsPerIP). A connection
// past a cap is answered with a canned problem+json (503, or 429 for the per-address cap,
// both with Retry-After) and closed, without reading its request.

// Connection rejection reasons, the values of the reason label of
// sluice_http_connections_rejected_total.
const (
	reasonMaxConnections      = "max_connections"
	reasonMaxConnectionsPerIP = "max_connections_per_ip"
)

const (
	// lingerTimeout bounds how long a closing connection is drained: a client still
	// sending a body it was refused would otherwise get a TCP reset that can destroy
	// the answer before it reads it.
	lingerTimeout = 2 * time.Second
	// lingerSlack is drained past the body limit (headers, chunk framing).
	lingerSlack = 64 << 10
	// maxRefusing bounds the refused connections being answered at once; past it a
	// refused connection is closed without an answer.
	maxRefusing = 256
)

// connLimiter is a net.Listener that enforces the connection caps.
type connLimiter struct {
	net.Listener
	max, perIP int
	metrics    *metrics

	mu     sync.Mutex
	open   int
	byAddr map[netip.Addr]int

	refusing  atomic.Int32
	refusals  [2][]byte // canned answers: [0] global cap, [1] per-address cap
	refuseDur time.Duration
}

func newConnLimiter(ln net.Listener, maxConns, perIP int, m *metrics) *connLimiter {
	l := &connLimiter{Listener: ln, max: maxConns, perIP: perIP, metrics: m,
		byAddr: map[netip.Addr]int{}, refuseDur: time.Second}
	l.refusals[0] = cannedProblem(Problem{Type: ProblemOverloaded, Title: http.StatusText(http.StatusServiceUnavailable),
		Status: http.StatusServiceUnavailable, Detail: fmt.Sprintf("the server holds its maximum of %d connections", maxConns)})
	l.refusals[1] = cannedProblem(Problem{Type: ProblemRateLimited, Title: http.StatusText(http.StatusTooManyRequests),
		Status: http.StatusTooManyRequests, Detail: fmt.Sprintf("at most %d connections per client address", perIP)})
	return l
}

// cannedProblem is a whole HTTP/1.1 response carrying p, closing the connection.
func cannedProblem(p Problem) []byte {
	body, _ := json.Marshal(p)
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nRetry-After: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		p.Status, p.Title, MediaTypeProblem, retryAfterSeconds, len(body), body)
}

// Accept returns the next connection within the caps, answering the others itself.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := peerAddr(c)
		refusal := l.admit(addr)
		if refusal < 0 {
			l.metrics.connections.Inc()
			return &limitedConn{Conn: c, l: l, addr: addr}, nil
		}
		reason := reasonMaxConnections
		if refusal == 1 {
			reason = reasonMaxConnectionsPerIP
		}
		l.metrics.connRejected.WithLabelValues(reason).Inc()
		if l.refusing.Add(1) > maxRefusing {
			l.refusing.Add(-1)
			_ = c.Close()
			continue
		}
		go l.refuse(c, l.refusals[refusal])
	}
}

// admit counts a new connection from addr and returns -1, or returns which cap it
// would break (0 global, 1 per address) without counting it.
func (l *connLimiter) admit(addr netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.open >= l.max {
		return 0
	}
	if l.perIP > 0 && addr.IsValid() && l.byAddr[addr] >= l.perIP {
		return 1
	}
	l.open++
	if l.perIP > 0 && addr.IsValid() {
		l.byAddr[addr]++
	}
	return -1
}

// done uncounts a connection admitted from addr.
func (l *connLimiter) done(addr netip.Addr) {
	l.mu.Lock()
	l.open--
	if l.perIP > 0 && addr.IsValid() {
		if l.byAddr[addr] <= 1 {
			delete(l.byAddr, addr)
		} else {
			l.byAddr[addr]--
		}
	}
	l.mu.Unlock()
	l.metrics.connections.Dec()
}

// refuse writes answer to c and closes it, draining what the client sends meanwhile.
func (l *connLimiter) refuse(c net.Conn, answer []byte) {
	defer l.refusing.Add(-1)
	_ = c.SetDeadline(time.Now().Add(l.refuseDur))
	if _, err := c.Write(answer); err != nil {
		_ = c.Close()
		return
	}
	lingerClose(c, l.refuseDur, lingerSlack)
}

// peerAddr is the remote IP address of c (invalid when it has none).
func peerAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// limitedConn is an admitted connection; closing it frees its place (once).
type limitedConn struct {
	net.Conn
	l     *connLimiter
	addr  netip.Addr
	once  sync.Once
	drain int64 // > 0: close gracefully, reading at most this many bytes (lingerOnClose)
}

// lingerOnClose makes the close of the connection under c graceful (see Close),
// draining at most n bytes, when it is a limitedConn. Set it when a response leaves a
// request body unread.
func lingerOnClose(c net.Conn, n int64) {
	if lc, ok := c.(*limitedConn); ok {
		lc.drain = n
	}
}

// Close closes the connection and frees its place. After lingerOnClose it closes
// gracefully: it ends the write side, so the answer already written is delivered
// rather than destroyed by a TCP reset, and drains what the client still sends for up
// to lingerTimeout in the background before closing.
func (c *limitedConn) Close() error {
	var err error
	c.once.Do(func() {
		if c.drain <= 0 {
			err = c.Conn.Close()
			c.l.done(c.addr)
			return
		}
		go func() {
			lingerClose(c.Conn, lingerTimeout, c.drain)
			c.l.done(c.addr)
		}()
	})
	return err
}

// lingerClose half-closes c, reads and drops what arrives until the client closes,
// n bytes arrived or d passed, and closes c. Reading costs no memory beyond a copy
// buffer; the time bound keeps a client from holding the connection.
func lingerClose(c net.Conn, d time.Duration, n int64) {
	defer c.Close()
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	if c.SetReadDeadline(time.Now().Add(d)) != nil {
		return
	}
	_, _ = io.CopyN(io.Discard, c, n)
}
