package ingest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/sluicehq/sluice/pipeline/rules"
)

// Defaults of the Idempotency-Key record (Config.IdempotencyKeys, Config.IdempotencyTTL).
const (
	// DefaultIdempotencyKeys is how many keys an instance remembers: about 200 bytes
	// each, so 100,000 keys take about 20 MB.
	DefaultIdempotencyKeys = 100_000
	// DefaultIdempotencyTTL is how long a key is remembered, as Stripe does.
	DefaultIdempotencyTTL = 24 * time.Hour
)

// ProblemIdempotencyKeyReused: 422, the Idempotency-Key was used before with a different
// body; nothing was written.
const ProblemIdempotencyKeyReused = "urn:sluice:problem:idempotency-key-reused"

// reasonKeyReused is the rejected_total reason of a 422.
const reasonKeyReused = "key_reused"

// idempotencyID is the event_id an Idempotency-Key gives event i of a request of n
// events: the key itself for a single event, "<key>-<i>" in a batch, so a retried batch
// gets the same ids (and is deduplicated downstream) on any instance. "" if key is "".
func idempotencyID(key string, i, n int) string {
	if key == "" || n == 1 {
		return key
	}
	return key + "-" + strconv.Itoa(i)
}

// checkIdempotencyKey answers 400 if key cannot make the event ids of a request of n
// events: not UTF-8, control characters, or an id the topic's rules on event_id would
// refuse (the clean stage would dead-letter every event of the request).
func checkIdempotencyKey(t Topic, key string, n int) *requestError {
	if !utf8.ValidString(key) {
		return errInvalidBody("the " + HeaderIdempotencyKey + " header must be UTF-8")
	}
	for _, r := range key {
		if unicode.IsControl(r) {
			return errInvalidBody("the " + HeaderIdempotencyKey + " header must not contain control characters")
		}
	}
	for i := range n {
		id := idempotencyID(key, i, n)
		if err := t.Rules.CheckField("event_id", id); err != nil {
			what := "the key"
			if n > 1 {
				what = fmt.Sprintf("the id of event %d (%s-%d)", i, truncate(key), i)
			}
			return errInvalidBody(fmt.Sprintf("the %s header cannot make a valid event_id: as %s, it breaks %s",
				HeaderIdempotencyKey, what, violationText(err)))
		}
	}
	return nil
}

// violationText says which rule a violation broke and how.
func violationText(err error) string {
	var v *rules.Violation
	if errors.As(err, &v) {
		return "the rule " + v.Rule + " on event_id: it " + v.Message
	}
	return err.Error()
}

// idempotencyKeys remembers, per topic and Idempotency-Key, the hash of the first body
// that came with it, for a bounded number of keys and a bounded time: the same key with
// another body answers 422 (IETF draft-ietf-httpapi-idempotency-key-header). Keys expire
// in the order they came, so a queue of them finds the oldest. Safe for concurrent use.
type idempotencyKeys struct {
	max int
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	seen  map[string]keyEntry
	queue []queuedKey // in insertion order; head is the oldest
	head  int
}

type keyEntry struct {
	hash [sha256.Size]byte
	at   time.Time
}

type queuedKey struct {
	key string
	at  time.Time
}

func newIdempotencyKeys(max int, ttl time.Duration, now func() time.Time) *idempotencyKeys {
	return &idempotencyKeys{max: max, ttl: ttl, now: now, seen: make(map[string]keyEntry)}
}

// remember binds key (of topic) to body's hash unless it is bound already, and reports
// whether it was bound to another body.
func (k *idempotencyKeys) remember(topic, key string, body []byte) (conflict bool) {
	h := sha256.Sum256(body)
	id := topic + "\x00" + key
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	k.expire(now)
	if e, ok := k.seen[id]; ok {
		return e.hash != h
	}
	for len(k.seen) >= k.max {
		k.pop()
	}
	k.seen[id] = keyEntry{hash: h, at: now}
	k.queue = append(k.queue, queuedKey{key: id, at: now})
	return false
}

// expire forgets the keys remembered ttl or longer ago.
func (k *idempotencyKeys) expire(now time.Time) {
	for k.head < len(k.queue) && !now.Before(k.queue[k.head].at.Add(k.ttl)) {
		k.pop()
	}
}

// pop forgets the oldest key.
func (k *idempotencyKeys) pop() {
	q := k.queue[k.head]
	k.queue[k.head] = queuedKey{}
	k.head++
	if e, ok := k.seen[q.key]; ok && e.at.Equal(q.at) {
		delete(k.seen, q.key)
	}
	if k.head > 1024 && k.head > len(k.queue)/2 {
		k.queue = append(k.queue[:0], k.queue[k.head:]...)
		k.head = 0
	}
}

// errKeyReused is the 422 of a key that came before with another body.
func errKeyReused() *requestError {
	return newRequestError(fiber.StatusUnprocessableEntity, ProblemIdempotencyKeyReused, reasonKeyReused,
		"this "+HeaderIdempotencyKey+" came before with a different body; nothing was written. "+
			"Retry with the original body, or use a new key for a new request")
}
