package stagekit

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/kafka"
)

func TestCrashKill(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	c := NewCrash(nil)
	conn, err := c.Dial(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if c.Killed() || c.Context().Err() != nil {
		t.Fatal("a new Crash is killed")
	}
	afters := 0
	c.Kill(func() { afters++ })
	c.Kill(func() { afters++ })
	if afters != 1 {
		t.Errorf("after ran %d times, want once", afters)
	}
	if !c.Killed() || !errors.Is(c.Context().Err(), context.Canceled) {
		t.Error("Kill did not end the context")
	}
	if _, err := conn.Write([]byte("x")); err == nil {
		t.Error("a connection made before Kill still writes")
	}
	if _, err := c.Dial(t.Context(), "tcp", ln.Addr().String()); !errors.Is(err, kafka.ErrSevered) {
		t.Errorf("dial after Kill: %v, want ErrSevered", err)
	}
}

func TestLogFetchErrors(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	fs := kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "t", Partitions: []kgo.FetchPartition{
		{Partition: 0, Err: context.Canceled},
		{Partition: 1, Err: context.DeadlineExceeded},
		{Partition: 2, Err: errors.New("broken")},
	}}}}}
	LogFetchErrors(log, fs)
	out := buf.String()
	if strings.Count(out, "fetch error") != 1 || !strings.Contains(out, "partition=2") {
		t.Errorf("logged %q: want only partition 2", out)
	}
}
