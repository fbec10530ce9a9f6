package wire

import (
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// HeaderPrefix starts every record header Sluice writes. Ingest refuses client headers
// that start with it.
const HeaderPrefix = "sluice-"

// Headers of every ingested record, kept on its clean copy (written by ingest and
// `sluice generate`).
const (
	// HeaderEventID carries the event_id, the deduplication key. On a window result it
	// is that of the window's record with the latest HeaderIngestTS.
	HeaderEventID = "sluice-event-id"
	// HeaderIngestTS carries the receive time as unix microseconds.
	HeaderIngestTS = "sluice-ingest-ts"
	// HeaderRequestID carries the id of the HTTP request the event came in with.
	HeaderRequestID = "sluice-request-id"
)

// Headers of the repartition stage's records and watermark markers.
const (
	// HeaderSource names the source partition a repartitioned record came from
	// ("purchases.clean/2").
	HeaderSource = "sluice-source"
	// HeaderWatermark, on a marker record (no value), is the source's watermark in Unix ms.
	HeaderWatermark = "sluice-watermark"
)

// Headers of a record in <from>.late.
const (
	// HeaderLateReason says why the record was not aggregated.
	HeaderLateReason = "sluice-late-reason"
	// HeaderAggregation names the aggregation it was late for.
	HeaderAggregation = "sluice-aggregation"
)

// Headers of reprocessing (`sluice reprocess`).
const (
	// HeaderReprocessID marks a window result written by a reprocess run rather than by
	// the live aggregate stage, and a re-fed raw record: its value is the run's id.
	HeaderReprocessID = "sluice-reprocess-id"
	// HeaderFirstIngestTS, on a re-fed raw record, keeps the HeaderIngestTS of the
	// original record: the re-fed one carries the time it was re-fed in HeaderIngestTS,
	// so the end-to-end latency and the sink's freshness measure the re-feed, not the age
	// of the event.
	HeaderFirstIngestTS = "sluice-first-ingest-ts"
)

// Headers of a dead letter and of a record waiting in a retry topic. A dead letter keeps
// the original key, value and headers and carries these besides.
const (
	// HeaderClass is the error class: permanent, transient or late.
	HeaderClass = "sluice-error-class"
	// HeaderError is the error, cut to a bounded length.
	HeaderError = "sluice-error"
	// HeaderStage is the stage that gave up (clean, sink, ...).
	HeaderStage = "sluice-stage"
	// HeaderOriginalTopic, HeaderOriginalPartition and HeaderOriginalOffset say where
	// the record was read.
	HeaderOriginalTopic     = "sluice-original-topic"
	HeaderOriginalPartition = "sluice-original-partition"
	HeaderOriginalOffset    = "sluice-original-offset"
	// HeaderAttempts counts the failed deliveries, all replays included.
	HeaderAttempts = "sluice-attempts"
	// HeaderFirstFailureTS is the first failure, unix microseconds.
	HeaderFirstFailureTS = "sluice-first-failure-ts"
	// HeaderRetryAt is when a retry record may be delivered again (unix microseconds).
	HeaderRetryAt = "sluice-retry-at"
	// HeaderRetryAttempts counts the failed deliveries since the record was last
	// replayed from a dead-letter topic (HeaderAttempts counts all of them): the retry
	// budget is per replay, so a replayed record is retried again before it returns to
	// the DLQ.
	HeaderRetryAttempts = "sluice-retry-attempts"
	// HeaderReplayed marks a record re-published from a dead-letter topic.
	HeaderReplayed = "sluice-replayed"
)

// Prefixes of the failure headers a dead letter replaces rather than appends, and a
// replay strips.
const (
	errorHeaderPrefix    = "sluice-error"
	retryHeaderPrefix    = "sluice-retry-"
	originalHeaderPrefix = "sluice-original-"
)

// IsFailureHeader reports whether k is a header of a record's failure (the error, its
// class and details, retry bookkeeping): a new dead letter replaces them.
func IsFailureHeader(k string) bool {
	return strings.HasPrefix(k, errorHeaderPrefix) || strings.HasPrefix(k, retryHeaderPrefix)
}

// IsOriginHeader reports whether k says where a dead letter was read
// (HeaderOriginalTopic and the like).
func IsOriginHeader(k string) bool { return strings.HasPrefix(k, originalHeaderPrefix) }

// Lookup returns the value of r's last header named key; false if it has none.
func Lookup(r *kgo.Record, key string) (string, bool) {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return string(r.Headers[i].Value), true
		}
	}
	return "", false
}

// Header returns the value of r's last header named key, or "".
func Header(r *kgo.Record, key string) string {
	v, _ := Lookup(r, key)
	return v
}

// Int returns r's header key as a decimal integer: false when r is nil, or the header
// is absent or not a decimal integer.
func Int(r *kgo.Record, key string) (int64, bool) {
	if r == nil {
		return 0, false
	}
	v, ok := Lookup(r, key)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// Count returns r's header key as a count (HeaderAttempts, HeaderRetryAttempts): 0 when
// r is nil, the header is absent, not a decimal integer, negative or beyond an int.
func Count(r *kgo.Record, key string) int {
	n, ok := Int(r, key)
	if !ok || n < 0 || int64(int(n)) != n {
		return 0
	}
	return int(n)
}

// Micros returns r's header key as a time in unix microseconds (HeaderIngestTS,
// HeaderFirstFailureTS, HeaderRetryAt), in UTC: false when absent or not a decimal
// integer.
func Micros(r *kgo.Record, key string) (time.Time, bool) {
	us, ok := Int(r, key)
	if !ok {
		return time.Time{}, false
	}
	return time.UnixMicro(us).UTC(), true
}

// AppendMicros is the value of a unix-microseconds header for t.
func AppendMicros(b []byte, t time.Time) []byte { return strconv.AppendInt(b, t.UnixMicro(), 10) }

// Attempts is r's HeaderAttempts: the deliveries of the record that already failed.
func Attempts(r *kgo.Record) int { return Count(r, HeaderAttempts) }

// RetryAttempts is r's HeaderRetryAttempts: the failed deliveries since the last replay.
func RetryAttempts(r *kgo.Record) int { return Count(r, HeaderRetryAttempts) }

// IngestTS is r's HeaderIngestTS: when ingest received the event.
func IngestTS(r *kgo.Record) (time.Time, bool) { return Micros(r, HeaderIngestTS) }

// FirstFailure is r's HeaderFirstFailureTS: when the record first failed.
func FirstFailure(r *kgo.Record) (time.Time, bool) { return Micros(r, HeaderFirstFailureTS) }

// RetryAt is r's HeaderRetryAt: when a retry record may be delivered again.
func RetryAt(r *kgo.Record) (time.Time, bool) { return Micros(r, HeaderRetryAt) }
