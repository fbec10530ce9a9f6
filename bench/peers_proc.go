package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A peer process: Sluice's processor (bench/peers/sluicepeer), the Kafka Streams app or the
// Flink job, each a separate process so that its CPU time and peak RSS are its own.

// peerProc is one running peer process.
type peerProc struct {
	name    string
	cmd     *exec.Cmd
	lines   chan string // its stdout, line by line
	exited  chan struct{}
	waitErr error
	logPath string
	Started time.Time
}

// startPeerProc starts argv with stderr to logPath and waits for the line "PEER READY"
// (other stdout lines are kept in Lines, e.g. "SCHEMA_ID 1").
func startPeerProc(ctx context.Context, name, dir, logPath string, argv []string, timeout time.Duration) (*peerProc, []string, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		log.Close()
		return nil, nil, err
	}
	p := &peerProc{name: name, cmd: cmd, lines: make(chan string, 64), exited: make(chan struct{}), logPath: logPath}
	p.Started = time.Now()
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, nil, fmt.Errorf("%s: start: %w", name, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default: // nobody reads past READY; drop
			}
		}
		p.waitErr = cmd.Wait()
		log.Close()
		close(p.exited)
	}()
	var before []string
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case l := <-p.lines:
			if strings.TrimSpace(l) == "PEER READY" {
				return p, before, nil
			}
			before = append(before, l)
		case <-p.exited:
			return nil, before, fmt.Errorf("%s exited before it was ready (%v); its log: %s\n%s", name, p.waitErr, logPath, tail(logPath, 30))
		case <-deadline.C:
			p.Stop()
			return nil, before, fmt.Errorf("%s not ready within %s; its log: %s\n%s", name, timeout, logPath, tail(logPath, 30))
		case <-ctx.Done():
			p.Stop()
			return nil, before, ctx.Err()
		}
	}
}

// Exited is closed when the process has ended.
func (p *peerProc) Exited() <-chan struct{} { return p.exited }

// Err describes how the process ended, with the end of its log.
func (p *peerProc) Err() error {
	return fmt.Errorf("%s exited (%v); its log: %s\n%s", p.name, p.waitErr, p.logPath, tail(p.logPath, 30))
}

// CPU is the process's user+system CPU time so far, in seconds (its threads included).
func (p *peerProc) CPU() float64 { return procCPU(p.cmd.Process.Pid) }

// RSSPeakMB is the process's peak resident set (VmHWM), in MiB.
func (p *peerProc) RSSPeakMB() float64 { return procHWM(p.cmd.Process.Pid) }

// Stop sends SIGTERM to the process group, waits up to 20 s, then SIGKILLs it.
func (p *peerProc) Stop() {
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-p.exited
	}
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times (100 on Linux).
const clockTicks = 100

// procCPU reads utime+stime of pid from /proc (-1 when it cannot).
func procCPU(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	s := string(b)
	// The command name is in parentheses and may hold spaces: fields start after ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return (u + st) / clockTicks
}

// procHWM reads VmHWM of pid in MiB (-1 when it cannot).
func procHWM(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				return -1
			}
			return kb / 1024
		}
	}
	return -1
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// repoRoot finds the module root (the directory with go.mod) from the working directory up.
func repoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "bench", "peers")); err == nil {
				return d, nil
			}
		}
		up := filepath.Dir(d)
		if up == d {
			return "", errors.New("peers: run from inside the sluice repository (no go.mod with bench/peers above the working directory)")
		}
		d = up
	}
}

// buildPeers builds what the runs need: sluicepeer with go build, the two Java apps with
// Maven unless already built (target/lib exists; scripts/peers/run.sh rebuilds them).
func buildPeers(ctx context.Context, root, binDir string, systems []string, progress io.Writer) error {
	for _, s := range systems {
		var cmd *exec.Cmd
		switch s {
		case peerSluice:
			cmd = exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(binDir, "sluicepeer"), "./bench/peers/sluicepeer")
			cmd.Dir = root
		case peerKStreams, peerFlink:
			dir := filepath.Join(root, "bench", "peers", s)
			if _, err := os.Stat(filepath.Join(dir, "target", "lib")); err == nil {
				continue
			}
			cmd = exec.CommandContext(ctx, "mvn", "-B", "-q", "package")
			cmd.Dir = dir
		default:
			continue
		}
		fmt.Fprintf(progress, "peers: building %s (%s)\n", s, strings.Join(cmd.Args, " "))
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("peers: build %s: %w\n%s", s, err, out)
		}
	}
	return nil
}

// javaArgv is the command line of a Java peer: a modest heap, warnings only.
func javaArgv(root, system, mainClass, heap string, args ...string) []string {
	dir := filepath.Join(root, "bench", "peers", system, "target")
	argv := []string{"java", "-Xmx" + heap, "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
		"-cp", filepath.Join(dir, "classes") + string(os.PathListSeparator) + filepath.Join(dir, "lib", "*"), mainClass}
	return append(argv, args...)
}
