package stream

import "github.com/oklog/ulid/v2"

// ULIDKeys packs keys that are ULIDs in their canonical form (26 characters of
// upper-case Crockford base32, as ingest makes them) into their 16 bytes. Any other key,
// a lower-case ULID included, stays a string, so Unpack(Pack(k)) is always k.
type ULIDKeys struct{}

var _ KeyPacker = ULIDKeys{}

// Pack returns the 16 bytes of a canonical ULID.
func (ULIDKeys) Pack(k string) (PackedKey, bool) {
	if len(k) != ulid.EncodedSize || k[0] > '7' {
		return PackedKey{}, false
	}
	for i := 0; i < len(k); i++ {
		if !canonicalULIDChar(k[i]) {
			return PackedKey{}, false
		}
	}
	id, err := ulid.ParseStrict(k)
	if err != nil {
		return PackedKey{}, false
	}
	return PackedKey(id), true
}

// Unpack returns the canonical string of a packed ULID.
func (ULIDKeys) Unpack(p PackedKey) string { return ulid.ULID(p).String() }

// canonicalULIDChar reports whether c is in the upper-case Crockford base32 alphabet
// ULIDs are written in (no I, L, O, U).
func canonicalULIDChar(c byte) bool {
	switch {
	case c >= '0' && c <= '9':
		return true
	case c >= 'A' && c <= 'Z':
		return c != 'I' && c != 'L' && c != 'O' && c != 'U'
	}
	return false
}
