package ingest

import (
	"errors"
	"fmt"

	"github.com/gofiber/fiber/v2"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/kafka"
)

// Problem types of produce failures that are not a plain 503.
const (
	// ProblemOutcomeUnknown: 504, the transaction holding the events was sent for commit
	// but its outcome did not come in time: the events may or may not be written. The
	// only non-2xx answer that may leave events visible; retry with the same
	// Idempotency-Key (or the returned event_ids in the events), and the clean stage
	// keeps one copy.
	ProblemOutcomeUnknown = "urn:sluice:problem:outcome-unknown"
	// ProblemKafkaRejected: 500, Kafka refused the events for good (a non-retriable
	// error such as a failed authorization); retrying the same request cannot help.
	ProblemKafkaRejected = "urn:sluice:problem:kafka-rejected"
)

// Rejection reasons of produce failures besides reasonUnavailable.
const (
	reasonOutcomeUnknown = "outcome_unknown"
	reasonKafkaRejected  = "kafka_rejected"
)

// produceError is the answer to a failed produce of the events with ids. Only a
// transient failure is retryable (503 with Retry-After); a record Kafka finds too large
// is 413 and any other permanent Kafka error 500, both without Retry-After; an unknown
// commit outcome is 504 with the event ids.
func produceError(err error, ids []string) *requestError {
	switch {
	case errors.Is(err, kafka.ErrTooLarge), errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return newRequestError(fiber.StatusRequestEntityTooLarge, ProblemTooLarge, reasonTooLarge,
			"Kafka cannot take these events, they are too large: "+err.Error()+"; nothing was written, send fewer or smaller events")
	case errors.Is(err, kafka.ErrOutcomeUnknown):
		e := newRequestError(fiber.StatusGatewayTimeout, ProblemOutcomeUnknown, reasonOutcomeUnknown,
			"Kafka did not confirm the commit of these events in time: they may or may not be written. "+
				"Retry with the same "+HeaderIdempotencyKey+" (or with these event_ids in the events); the copies are deduplicated")
		e.problem.EventIDs = ids
		e.retryAfter = true
		return e
	case kafka.Permanent(err):
		return newRequestError(fiber.StatusInternalServerError, ProblemKafkaRejected, reasonKafkaRejected,
			"Kafka refused the events for good: "+err.Error()+"; nothing was written, and retrying the same request will not help")
	}
	e := newRequestError(fiber.StatusServiceUnavailable, ProblemUnavailable, reasonUnavailable,
		"Kafka did not take the events in time; nothing of this request was written, retry later")
	e.retryAfter = true
	return e
}

// recordOverhead is the size of a record batch holding no record, as kgo counts it (61
// bytes of batch header and the 4-byte length of the records array).
const recordOverhead = 65

// recordBatchBytes is the size of a record batch holding only r, uncompressed: the
// size the broker compares with max.message.bytes when compression does not help.
func recordBatchBytes(r *kgo.Record) int {
	l := 1 + 1 + 1 + // attributes, timestamp delta 0, offset delta 0
		kbin.VarintLen(int32(len(r.Key))) + len(r.Key) +
		kbin.VarintLen(int32(len(r.Value))) + len(r.Value) +
		kbin.VarintLen(int32(len(r.Headers)))
	for _, h := range r.Headers {
		l += kbin.VarintLen(int32(len(h.Key))) + len(h.Key) + kbin.VarintLen(int32(len(h.Value))) + len(h.Value)
	}
	return recordOverhead + kbin.VarintLen(int32(l)) + l
}

// checkRecordSizes answers 413 naming every event whose record is larger than limit
// (the topic's max.message.bytes), before anything is produced: Kafka would refuse it
// however often the client retried.
func checkRecordSizes(recs []*kgo.Record, limit int) *requestError {
	var errs []ProblemError
	for i, r := range recs {
		if n := recordBatchBytes(r); n > limit {
			errs = append(errs, ProblemError{Index: i, Message: fmt.Sprintf(
				"the event's record is %d bytes, larger than the topic's limit of %d bytes (max.message.bytes)", n, limit)})
		}
	}
	if len(errs) == 0 {
		return nil
	}
	detail := fmt.Sprintf("%d of %d events are larger than Kafka accepts (%d bytes per record); nothing was written",
		len(errs), len(recs), limit)
	if len(errs) > maxProblemErrors {
		errs = errs[:maxProblemErrors]
		detail += fmt.Sprintf(" (first %d listed)", maxProblemErrors)
	}
	e := newRequestError(fiber.StatusRequestEntityTooLarge, ProblemTooLarge, reasonTooLarge, detail)
	e.problem.Errors = errs
	return e
}
