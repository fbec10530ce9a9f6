package gen

import (
	"encoding/binary"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"
)

// sessionLength is the span of one synthetic session: a user's events within the same
// (user-shifted) 30-minute slot share a session_id, in every topic.
const sessionLength = 30 * time.Minute

// eventID returns a ULID whose time part is the event time and whose 80 random bits come
// from r. The same seed and clock give the same ids; two runs at different wall-clock times
// give different ids, so replaying a seed never collides with an earlier run's event ids
// in the deduplication stage.
func eventID(r *rand.Rand, t time.Time) string {
	var id ulid.ULID
	ms := t.UnixMilli()
	if ms < 0 {
		ms = 0
	}
	_ = id.SetTime(uint64(ms)) // cannot fail before the year 10889
	var e [10]byte
	binary.BigEndian.PutUint64(e[:8], r.Uint64())
	binary.BigEndian.PutUint16(e[8:], uint16(r.Uint32()))
	_ = id.SetEntropy(e[:]) // cannot fail: len is 10
	return id.String()
}

// orderID returns an order id such as "o-3f9a0c1d2e4b5a6f".
func orderID(r *rand.Rand) string {
	return "o-" + hex16(r.Uint64())
}

// userID formats a user number as "u-<n>".
func userID(n uint64) string { return "u-" + strconv.FormatUint(n, 10) }

// productID formats a product number as "p-<n>".
func productID(n uint64) string { return "p-" + strconv.FormatUint(n, 10) }

// sessionKey derives the session of user at t from the seed alone, so that page views,
// clicks and purchases of one user in one slot share it. Slots are shifted per user so
// that sessions do not all roll over at the same instant.
func sessionKey(seed, user uint64, t time.Time) uint64 {
	slot := int64(sessionLength / time.Millisecond)
	offset := int64(hash3(seed, user, 0x5e55) % uint64(slot))
	bucket := floorDiv(t.UnixMilli()+offset, slot)
	return hash3(seed, user, uint64(bucket))
}

// sessionID formats a session key as "s-<16 hex digits>".
func sessionID(key uint64) string { return "s-" + hex16(key) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// hex16 formats x as 16 lower-case hex digits.
func hex16(x uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = digits[x&0xf]
		x >>= 4
	}
	return string(b[:])
}
