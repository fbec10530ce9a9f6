package process

import (
	"context"
	"errors"
	"net"
	"sync"
)

// errSevered is what a severed stage's dials fail with.
var errSevered = errors.New("stage killed: connection severed")

// severableDialer dials the brokers and can cut every connection at once and refuse new
// ones: from the brokers' side the stage then looks exactly like a crashed process (no
// commit, no abort, no leave-group; its transaction and membership time out or are
// fenced). Stage.Kill uses it.
type severableDialer struct {
	d     net.Dialer
	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
}

func newSeverableDialer() *severableDialer {
	return &severableDialer{conns: make(map[net.Conn]struct{})}
}

// DialContext implements kgo.Dialer's function.
func (s *severableDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	s.mu.Lock()
	if s.cut {
		s.mu.Unlock()
		return nil, errSevered
	}
	s.mu.Unlock()
	c, err := s.d.DialContext(ctx, network, addr)
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
