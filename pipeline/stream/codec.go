package stream

import (
	"encoding/binary"
	"errors"
)

// Int64Codec stores an int64 as 8 big-endian bytes.
type Int64Codec struct{}

// Encode appends v.
func (Int64Codec) Encode(dst []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(v))
}

// Decode reads 8 bytes.
func (Int64Codec) Decode(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, errors.New("int64 codec: want 8 bytes")
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}
