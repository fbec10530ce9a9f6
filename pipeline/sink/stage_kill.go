package sink

import (
	"context"
	"errors"
	"net"
	"sync"
)

// errSevered is what a killed stage's dials fail with.
var errSevered = errors.New("sink stage killed: connection severed")

// severableDialer dials the brokers (through next when set) and can cut every
// connection at once and refuse new ones: the brokers then see the stage exactly as a
// crashed process (no leave-group, no final commit; its partitions move after the
// session timeout). Stage.Kill uses it.
type severableDialer struct {
	next  func(ctx context.Context, network, host string) (net.Conn, error)
	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
}

func newSeverableDialer(next func(ctx context.Context, network, host string) (net.Conn, error)) *severableDialer {
	if next == nil {
		var d net.Dialer
		next = d.DialContext
	}
	return &severableDialer{next: next, conns: make(map[net.Conn]struct{})}
}

// DialContext has the signature of kafka.Config.Dial.
func (s *severableDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	s.mu.Lock()
	cut := s.cut
	s.mu.Unlock()
	if cut {
		return nil, errSevered
	}
	c, err := s.next(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut {
		c.Close()
		return nil, errSevered
	}
	s.conns[c] = struct{}{}
	return &trackedConn{Conn: c, s: s}, nil
}

func (s *severableDialer) sever() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cut = true
	for c := range s.conns {
		c.Close()
	}
	clear(s.conns)
}

type trackedConn struct {
	net.Conn
	s *severableDialer
}

func (c *trackedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.conns, c.Conn)
	c.s.mu.Unlock()
	return c.Conn.Close()
}
