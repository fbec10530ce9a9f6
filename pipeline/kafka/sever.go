package kafka

import (
	"context"
	"errors"
	"net"
	"sync"
)

// ErrSevered is what the dials of a severed client fail with.
var ErrSevered = errors.New("connection severed (stage killed)")

// SeverableDialer dials the brokers (through next when set, for kafka.Config.Dial) and can cut every
// connection at once and refuse new ones: the brokers then see the stage exactly as a
// crashed process (no leave-group, no final commit; its partitions move after the
// session timeout; a transaction it left open is fenced or times out). The stages' Kill
// uses it (tests).
type SeverableDialer struct {
	next  func(ctx context.Context, network, host string) (net.Conn, error)
	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
}

func NewSeverableDialer(next func(ctx context.Context, network, host string) (net.Conn, error)) *SeverableDialer {
	if next == nil {
		var d net.Dialer
		next = d.DialContext
	}
	return &SeverableDialer{next: next, conns: make(map[net.Conn]struct{})}
}

// DialContext has the signature of kafka.Config.Dial.
func (s *SeverableDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	s.mu.Lock()
	cut := s.cut
	s.mu.Unlock()
	if cut {
		return nil, ErrSevered
	}
	c, err := s.next(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut {
		c.Close()
		return nil, ErrSevered
	}
	s.conns[c] = struct{}{}
	return &trackedConn{Conn: c, s: s}, nil
}

func (s *SeverableDialer) Sever() {
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
	s *SeverableDialer
}

func (c *trackedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.conns, c.Conn)
	c.s.mu.Unlock()
	return c.Conn.Close()
}
