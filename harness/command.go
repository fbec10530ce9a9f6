package harness

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// SluiceBinary returns the path of a `sluice` binary: SLUICE_TEST_SLUICE_BIN if set (to
// measure another build, e.g. an older commit), else one built from this tree once per
// test binary.
func SluiceBinary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("SLUICE_TEST_SLUICE_BIN"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(dir, "sluice")
		_, file, _, _ := runtime.Caller(0)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", buildBin, "./cmd/sluice")
		cmd.Dir = filepath.Dir(filepath.Dir(file)) // the module root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = errors.New("go build ./cmd/sluice: " + err.Error() + ": " + string(out))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// RemoveSluiceBinary deletes the binary SluiceBinary built, if any. Call it from TestMain
// after m.Run.
func RemoveSluiceBinary() {
	if buildBin != "" {
		_ = os.RemoveAll(filepath.Dir(buildBin))
	}
}

// Command is a `sluice` subcommand running as a child process against the pipeline's
// brokers and registry: a real process that a test can kill with SIGKILL.
type Command struct {
	t    testing.TB
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan error
}

// StartCommand runs `sluice <sub> --brokers ... --registry-url ... --instance-id id
// --http-addr 127.0.0.1:0 args...` with the environment of the test (so SLUICE_* variables
// reach it). It is killed when the test ends.
func (p *Pipeline) StartCommand(sub, id string, args ...string) *Command {
	p.t.Helper()
	bin := SluiceBinary(p.t)
	all := append([]string{sub,
		"--brokers", strings.Join(p.Brokers, ","),
		"--registry-url", p.Deps.Service.RegistryURL,
		"--instance-id", id,
		"--http-addr", "127.0.0.1:0",
	}, args...)
	if sub == "process" && !slices.Contains(args, "--state-dir") {
		all = append(all, "--state-dir", p.StateDir(id))
	}
	c := &Command{t: p.t, cmd: exec.Command(bin, all...), out: &lockedBuffer{}, done: make(chan error, 1)}
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		p.t.Fatalf("start sluice %s: %v", sub, err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	p.t.Cleanup(func() {
		c.Kill()
		if p.t.Failed() {
			p.t.Logf("sluice %s %s output:\n%s", sub, id, c.Output())
		}
	})
	return c
}

// Kill sends SIGKILL and waits until the process is gone (a no-op once it exited).
func (c *Command) Kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	c.wait()
}

// Terminate sends SIGTERM (graceful shutdown) and returns the exit error after the
// process exited, or fails the test after timeout.
func (c *Command) Terminate(timeout time.Duration) error {
	c.t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.done:
		c.done <- err
		return err
	case <-time.After(timeout):
		c.t.Fatalf("sluice did not exit %s after SIGTERM:\n%s", timeout, c.Output())
		return nil
	}
}

// Exited waits, without signalling, until the process exits by itself and returns its
// exit error; it fails the test after timeout.
func (c *Command) Exited(timeout time.Duration) error {
	c.t.Helper()
	select {
	case err := <-c.done:
		c.done <- err
		return err
	case <-time.After(timeout):
		c.t.Fatalf("sluice did not exit within %s:\n%s", timeout, c.Output())
		return nil
	}
}

func (c *Command) wait() {
	err := <-c.done
	c.done <- err
}

// Output is what the process wrote to stdout and stderr so far.
func (c *Command) Output() string { return c.out.String() }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
