package pebblestore_test

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/stream/pebblestore"
)

// fullFS is a file system whose disk is full: creating a file, or writing to one opened
// for writing, fails with ENOSPC (reads and renames of what exists still work).
type fullFS struct{ vfs.FS }

func (f fullFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return nil, &pathErr{op: "create", path: name}
}

func (f fullFS) ReuseForWrite(old, name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return nil, &pathErr{op: "reuse", path: name}
}

func (f fullFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, o ...vfs.OpenOption) (vfs.File, error) {
	return nil, &pathErr{op: "open for write", path: name}
}

type pathErr struct{ op, path string }

func (e *pathErr) Error() string { return e.op + " " + e.path + ": " + syscall.ENOSPC.Error() }
func (e *pathErr) Unwrap() error { return syscall.ENOSPC }

// TestDiskFullAtOpen: a state directory on a full disk does not open: the error names the
// directory and says the device has no space (ENOSPC), and no store is returned, so the
// task never starts without its state.
func TestDiskFullAtOpen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	s.Put("a", 1)
	if err := s.CommitAt(7); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Only a directory Pebble has to create files in at open: on one holding a WAL to
	// replay, Pebble v2 retries the failing flush in the background and Open does not
	// return (seen here: a hang, not an error).
	for name, d := range map[string]string{"new": t.TempDir() + "/state"} {
		t.Run(name, func(t *testing.T) {
			b, err := pebblestore.Open[int64](d, stream.Int64Codec{}, pebblestore.Options{FS: fullFS{vfs.Default}})
			if err == nil {
				_ = b.Close()
				t.Fatal("opened a state directory on a full disk")
			}
			if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), d) {
				t.Fatalf("open: %v; want ENOSPC naming %s", err, d)
			}
		})
	}
	// The directory is not locked by the failed open: with space again it opens, with
	// its state and checkpoint intact.
	s = open(t, dir)
	defer s.Close()
	if v, ok := s.Get("a"); !ok || v != 1 {
		t.Fatalf("after the failed open: a = %d, %v; want 1", v, ok)
	}
	if cp, ok := s.Checkpoint(); !ok || cp != 7 {
		t.Fatalf("after the failed open: checkpoint %d, %v; want 7", cp, ok)
	}
}
