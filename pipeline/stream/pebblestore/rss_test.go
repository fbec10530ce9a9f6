package pebblestore_test

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/stream/pebblestore"
)

// TestStateRSS prints the resident memory of this process holding N dedup ids, filled the
// way the clean stage fills them (Contains, then Add, a commit every 5,000 ids, ULID ids,
// event times 1 ms apart, 24 h horizon: nothing expires). Run one backend per process:
//
//	SLUICE_STATE_RSS_IDS=10000000 SLUICE_STATE_BACKEND=pebble \
//	  go test -count=1 -timeout 3600s -run TestStateRSS -v ./pipeline/stream/pebblestore/
//
// With the pebble backend it then closes the store and times the reopen (open, load the
// expiry index counts, first read). SLUICE_STATE_DIR keeps the directory; with
// SLUICE_STATE_REOPEN=1 the test only reopens that directory (a fresh process).
func TestStateRSS(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv("SLUICE_STATE_RSS_IDS"))
	if err != nil {
		t.Skip("set SLUICE_STATE_RSS_IDS (and SLUICE_STATE_BACKEND=memory|pebble)")
	}
	backend := os.Getenv("SLUICE_STATE_BACKEND")
	dir := os.Getenv("SLUICE_STATE_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	const horizon = 24 * time.Hour
	if os.Getenv("SLUICE_STATE_REOPEN") == "1" {
		start := time.Now()
		s, d := openDedup(t, dir, horizon)
		d.Contains(ulid.ULID(idOf(0)).String(), 0)
		took := time.Since(start)
		report(t, fmt.Sprintf("pebble reopen in a new process: %d ids", s.Len()), s)
		t.Logf("reopen %v", took)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return
	}
	var s *stream.Store[int64]
	var d *stream.Dedup
	switch backend {
	case "memory":
		s = stream.NewStore[int64]("dedup", stream.Int64Codec{}).PackKeys(stream.ULIDKeys{})
		d = stream.NewDedup(s, horizon)
	case "pebble":
		s, d = openDedup(t, dir, horizon)
	default:
		t.Fatalf("SLUICE_STATE_BACKEND=%q, want memory or pebble", backend)
	}
	start := time.Now()
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for i := range n {
		id := ulid.ULID(idOf(uint64(i))).String()
		at := base + int64(i)
		if d.Contains(id, at) {
			t.Fatalf("id %d seen twice", i)
		}
		d.Add(id, at)
		if i%5000 == 4999 {
			if err := s.CommitAt(int64(i + 1)); err != nil {
				t.Fatal(err)
			}
		}
		if i%1_000_000 == 999_999 {
			t.Logf("%d ids in %v", i+1, time.Since(start))
		}
	}
	if err := s.CommitAt(int64(n)); err != nil {
		t.Fatal(err)
	}
	fill := time.Since(start)
	report(t, fmt.Sprintf("%s: %d ids, filled in %v (%.0f ids/s)", backend, s.Len(), fill, float64(n)/fill.Seconds()), s)
	if backend != "pebble" {
		return
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	s, d = openDedup(t, dir, horizon)
	if !d.Contains(ulid.ULID(idOf(uint64(n-1))).String(), base+int64(n)) {
		t.Fatal("last id lost across reopen")
	}
	t.Logf("reopen (same process) with %d ids: %v", s.Len(), time.Since(start))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func openDedup(t *testing.T, dir string, horizon time.Duration) (*stream.Store[int64], *stream.Dedup) {
	t.Helper()
	b, err := pebblestore.Open[int64](dir, stream.Int64Codec{}, pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := stream.NewStoreOn[int64]("dedup", stream.Int64Codec{}, b)
	d := stream.NewDedup(s, horizon)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return s, d
}

// report logs RSS, peak RSS and Go heap after a GC, and the backend's disk and cache use.
func report(t *testing.T, what string, s *stream.Store[int64]) {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, hwm := procStatus(t, "VmRSS"), procStatus(t, "VmHWM")
	line := fmt.Sprintf("%s: VmRSS %d MiB, VmHWM %d MiB, Go heap %d MiB", what, rss>>10, hwm>>10, ms.HeapAlloc>>20)
	if b, ok := s.Backend().(*pebblestore.Backend[int64]); ok {
		st := b.Stats()
		line += fmt.Sprintf(", disk %d MiB, block cache %d MiB", st.DiskBytes>>20, st.CacheBytes>>20)
	}
	t.Log(line)
}

// procStatus is a field of /proc/self/status in KiB.
func procStatus(t *testing.T, field string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatalf("%s not in /proc/self/status", field)
	return 0
}

// idOf is a canonical ULID with timestamp i/1000 ms-ish and entropy i: distinct ids in
// time order, as ingest makes them.
func idOf(i uint64) [16]byte {
	var b [16]byte
	ms := 1764547200000 + i // 2025-12-01, one ms apart
	for j := range 6 {
		b[5-j] = byte(ms >> (8 * j))
	}
	for j := range 8 {
		b[15-j] = byte(i*0x9E3779B97F4A7C15>>(8*j)) ^ byte(j)
	}
	return b
}

// TestExpiryStall prints the longest single Add call and the longest commit while N dedup
// ids expire (env SLUICE_STATE_STALL_IDS, SLUICE_STATE_BACKEND=memory|pebble): the ids
// are filled at event times 1 ms apart, then 100-id transactions at a watermark past all
// of them run until the expiry backlog is gone. SLUICE_STATE_EXPIRY_LIMIT sets
// Dedup.ExpiryLimit (default stream.DefaultExpiryLimit).
//
//	SLUICE_STATE_STALL_IDS=1000000 SLUICE_STATE_BACKEND=pebble \
//	  go test -count=1 -timeout 3600s -run TestExpiryStall -v ./pipeline/stream/pebblestore/
//
// Each stall is printed twice: wall time, and the CPU time of the thread that made the
// call (the processing goroutine is locked to its thread): on a loaded machine the wall
// time includes waiting for a core, the thread time is the work the call did.
// SLUICE_STATE_STALL_PROFILE=FILE writes a CPU profile of the expiry phase.
func TestExpiryStall(t *testing.T) {
	n, err := strconv.Atoi(os.Getenv("SLUICE_STATE_STALL_IDS"))
	if err != nil {
		t.Skip("set SLUICE_STATE_STALL_IDS (and SLUICE_STATE_BACKEND=memory|pebble)")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const horizon = time.Hour
	var s *stream.Store[int64]
	var d *stream.Dedup
	switch b := os.Getenv("SLUICE_STATE_BACKEND"); b {
	case "memory":
		s = stream.NewStore[int64]("dedup", stream.Int64Codec{}).PackKeys(stream.ULIDKeys{})
		d = stream.NewDedup(s, horizon)
	case "pebble":
		s, d = openDedup(t, t.TempDir(), horizon)
		defer s.Close()
	default:
		t.Fatalf("SLUICE_STATE_BACKEND=%q, want memory or pebble", b)
	}
	limit := stream.DefaultExpiryLimit
	if v := os.Getenv("SLUICE_STATE_EXPIRY_LIMIT"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil {
			t.Fatalf("SLUICE_STATE_EXPIRY_LIMIT: %v", err)
		}
		d.ExpiryLimit(limit)
	}
	st := expiryStall(t, s, d, n, limit, os.Getenv("SLUICE_STATE_STALL_PROFILE"))
	q := func(c []time.Duration, f float64) time.Duration { return c[int(float64(len(c)-1)*f)] }
	t.Logf("%s: %d ids expired in %d transactions, %v (%.0f ids/s); largest tombstone batch %d",
		os.Getenv("SLUICE_STATE_BACKEND"), n, len(st.commits), st.total, float64(n)/st.total.Seconds(), d.LargestExpiryBatch())
	t.Logf("wall:   longest Add %v; commit p50 %v, p90 %v, p99 %v, max %v",
		st.maxAdd, q(st.commits, .5), q(st.commits, .9), q(st.commits, .99), q(st.commits, 1))
	t.Logf("thread: longest Add %v; commit p50 %v, p90 %v, p99 %v, max %v",
		st.maxAddCPU, q(st.commitsCPU, .5), q(st.commitsCPU, .9), q(st.commitsCPU, .99), q(st.commitsCPU, 1))
}

// TestExpiryStallBound: 200,000 ids expire from a Pebble dedup store in transactions of
// 100 new ids each, at the default limit: no transaction carries more than
// stream.DefaultExpiryLimit tombstones, and the work of the longest Add or commit (the
// CPU time of the calling thread, which waiting for a core on a loaded machine does not
// inflate) stays under a generous 100 ms (measured: 5-13 ms per commit of 10,000
// tombstones with the expiry index range-deleted, 11-32 ms with a point tombstone per
// index entry).
func TestExpiryStallBound(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s, d := openDedup(t, t.TempDir(), time.Hour)
	defer s.Close()
	const n = 200_000
	st := expiryStall(t, s, d, n, stream.DefaultExpiryLimit, "")
	if got := d.LargestExpiryBatch(); got > stream.DefaultExpiryLimit {
		t.Errorf("a transaction carried %d tombstones, limit %d", got, stream.DefaultExpiryLimit)
	}
	if got := s.Len(); got != len(st.commits)*100 {
		t.Errorf("%d ids left, want the %d added while expiring", got, len(st.commits)*100)
	}
	const bound = 100 * time.Millisecond
	if c := st.commitsCPU[len(st.commitsCPU)-1]; c > bound || st.maxAddCPU > bound {
		t.Errorf("longest commit %v, longest Add %v of thread CPU: over %v", c, st.maxAddCPU, bound)
	}
}

type stallStats struct {
	maxAdd, maxAddCPU, total time.Duration
	commits, commitsCPU      []time.Duration // sorted
}

// expiryStall fills d with n ids at event times 0..n-1 ms, then runs transactions of 100
// new ids at a watermark past all of them until the expiry backlog is gone, timing each
// Add and commit (wall and thread CPU: the caller locks its thread). profile, if set, is
// the file a CPU profile of the expiry phase goes to.
func expiryStall(t *testing.T, s *stream.Store[int64], d *stream.Dedup, n, limit int, profile string) stallStats {
	t.Helper()
	for i := range n {
		d.Add(ulid.ULID(idOf(uint64(i))).String(), int64(i))
		if i%5000 == 4999 {
			if err := s.CommitAt(int64(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.CommitAt(int64(n)); err != nil {
		t.Fatal(err)
	}
	if profile != "" {
		out, err := os.Create(profile)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(out); err != nil {
			t.Fatal(err)
		}
		defer func() { pprof.StopCPUProfile(); _ = out.Close() }()
	}
	at := int64(n) + 2*time.Hour.Milliseconds()
	var st stallStats
	txns, next := 0, n
	start := time.Now()
	for d.ExpiryBacklog() > 0 || txns == 0 {
		if txns > n/limit+10 {
			t.Fatalf("backlog %d after %d transactions", d.ExpiryBacklog(), txns)
		}
		for range 100 {
			t0, c0 := time.Now(), threadCPU(t)
			d.Add(ulid.ULID(idOf(uint64(next))).String(), at)
			st.maxAdd, st.maxAddCPU = max(st.maxAdd, time.Since(t0)), max(st.maxAddCPU, threadCPU(t)-c0)
			next++
		}
		t0, c0 := time.Now(), threadCPU(t)
		if err := s.CommitAt(int64(next)); err != nil {
			t.Fatal(err)
		}
		st.commits, st.commitsCPU = append(st.commits, time.Since(t0)), append(st.commitsCPU, threadCPU(t)-c0)
		txns++
	}
	st.total = time.Since(start)
	slices.Sort(st.commits)
	slices.Sort(st.commitsCPU)
	return st
}

// threadCPU is the CPU time (user + system) of the calling thread: the caller is locked
// to its OS thread.
func threadCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rusageThread is RUSAGE_THREAD (Linux).
const rusageThread = 1
