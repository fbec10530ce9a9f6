package pebblestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/cockroachdb/pebble/v2"
	"github.com/sluicehq/sluice/pipeline/stream"
)

// meta is the checkpoint record: version, flags, checkpoint, key count, index width.
type meta struct {
	hasCheckpoint bool
	checkpoint    int64
	n             int64
	width         int64
}

const metaVersion = 1

var metaKey = []byte{'m'}

// timeKey holds when the checkpoint was written (unix ms, 8 bytes): a checkpoint older
// than the changelog's delete.retention.ms may have missed tombstones compaction removed.
var timeKey = []byte{'t'}

func (m meta) encode() []byte {
	b := make([]byte, 0, 30)
	b = append(b, metaVersion)
	if m.hasCheckpoint {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(m.checkpoint))
	b = binary.BigEndian.AppendUint64(b, uint64(m.n))
	b = binary.BigEndian.AppendUint64(b, uint64(m.width))
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func decodeMeta(b []byte) (meta, error) {
	if len(b) != 30 {
		return meta{}, fmt.Errorf("checkpoint record is %d bytes, want 30", len(b))
	}
	if got, want := binary.BigEndian.Uint32(b[26:]), crc32.Checksum(b[:26], castagnoli); got != want {
		return meta{}, fmt.Errorf("checkpoint record checksum %08x, want %08x", got, want)
	}
	if b[0] != metaVersion || b[1] > 1 {
		return meta{}, fmt.Errorf("checkpoint record version %d flags %d unknown", b[0], b[1])
	}
	m := meta{
		hasCheckpoint: b[1] == 1,
		checkpoint:    int64(binary.BigEndian.Uint64(b[2:])),
		n:             int64(binary.BigEndian.Uint64(b[10:])),
		width:         int64(binary.BigEndian.Uint64(b[18:])),
	}
	if m.n < 0 || m.width < 0 || (m.hasCheckpoint && m.checkpoint < 0) {
		return meta{}, errors.New("checkpoint record out of range")
	}
	return m, nil
}

// load reads the checkpoint record; a corrupt one, or state without one, is wiped.
func (b *Backend[V]) load() error {
	v, closer, err := b.db.Get(metaKey)
	if errors.Is(err, pebble.ErrNotFound) {
		empty, err := b.empty()
		if err != nil {
			return err
		}
		if !empty {
			b.discarded = fmt.Errorf("state directory %s: state without a checkpoint record", b.dir)
			return b.Wipe()
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("state directory %s: read checkpoint: %w", b.dir, err)
	}
	m, derr := decodeMeta(v)
	_ = closer.Close()
	if derr != nil {
		b.discarded = fmt.Errorf("state directory %s: %w", b.dir, derr)
		return b.Wipe()
	}
	b.n, b.width = m.n, m.width
	if m.hasCheckpoint {
		b.checkpoint = m.checkpoint
		at, closer, err := b.db.Get(timeKey)
		if err == nil {
			if len(at) == 8 {
				b.checkpointAt = int64(binary.BigEndian.Uint64(at))
			}
			_ = closer.Close()
		} else if !errors.Is(err, pebble.ErrNotFound) {
			return fmt.Errorf("state directory %s: read checkpoint time: %w", b.dir, err)
		}
	}
	return nil
}

func (b *Backend[V]) empty() (bool, error) {
	it, err := b.db.NewIter(nil)
	if err != nil {
		return false, err
	}
	empty := !it.First()
	return empty, errors.Join(it.Error(), it.Close())
}

func (b *Backend[V]) usable() error {
	if b.db == nil {
		return stream.ErrClosed
	}
	return b.broken
}
