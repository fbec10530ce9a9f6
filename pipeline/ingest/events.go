package ingest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/schema"
)

// HeaderIdempotencyKey is the request header whose value becomes the event_id of a
// single-event request.
const HeaderIdempotencyKey = "Idempotency-Key"

// Accepted is the 202 body of POST /api/v1/events/{topic}.
type Accepted struct {
	// Accepted is the number of events Kafka acknowledged.
	Accepted int `json:"accepted"`
	// EventIDs are their event ids, in request order.
	EventIDs []string `json:"event_ids"`
}

// postEvents is POST /api/v1/events/{topic}: validate every event, produce them all,
// answer 202 once Kafka acknowledged every record.
func (s *Server) postEvents(c *fiber.Ctx) error {
	recv := s.cfg.Now()
	enc, ok := s.encoders[c.Params("topic")]
	if !ok {
		s.metrics.rejected.WithLabelValues(unknownTopic, reasonUnknownTopic).Inc()
		return newRequestError(fiber.StatusNotFound, ProblemUnknownTopic, reasonUnknownTopic,
			fmt.Sprintf("topic %q does not exist; GET /api/v1/topics lists the topics", c.Params("topic")))
	}
	topic := enc.topic.Name
	recs, ids, n, rerr := s.records(c, enc, recv)
	if rerr != nil {
		s.reject(topic, rerr.reason, n)
		return rerr
	}

	rid, _ := c.Locals(localRequestID).(string)
	if rid != "" {
		for _, r := range recs {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: RecordHeaderRequestID, Value: []byte(rid)})
		}
	}
	start := time.Now()
	err := s.produce(c.UserContext(), recs)
	s.metrics.produceDuration.WithLabelValues(topic).Observe(time.Since(start).Seconds())
	if err != nil {
		s.cfg.Logger.Warn("ingest: produce failed", "request_id", rid, "topic", topic, "events", len(recs), "err", err)
		s.reject(topic, reasonUnavailable, len(recs))
		e := newRequestError(fiber.StatusServiceUnavailable, ProblemUnavailable, reasonUnavailable,
			"Kafka did not acknowledge the events in time; nothing is guaranteed written, retry later")
		e.retryAfter = true
		return e
	}
	s.metrics.events.WithLabelValues(topic, "accepted").Add(float64(len(recs)))
	s.cfg.Logger.Debug("ingest: accepted", "request_id", rid, "topic", topic, "events", len(recs), "event_ids", firstIDs(ids, 10))
	return c.Status(fiber.StatusAccepted).JSON(Accepted{Accepted: len(recs), EventIDs: ids})
}

// records reads and validates the request and builds one record per event. Every
// failure is a *requestError, returned with the number of events the request held (0
// when they could not be counted).
func (s *Server) records(c *fiber.Ctx, enc *Encoder, recv time.Time) ([]*kgo.Record, []string, int, *requestError) {
	topic := enc.topic.Name
	if ce := c.Get(fiber.HeaderContentEncoding); ce != "" && !strings.EqualFold(ce, "identity") {
		return nil, nil, 0, newRequestError(fiber.StatusUnsupportedMediaType, ProblemUnsupportedMediaType,
			reasonContentType, "Content-Encoding is not supported; send the body uncompressed")
	}
	format, ok := bodyFormatOf(c.Get(fiber.HeaderContentType))
	if !ok {
		c.Set("Accept-Post", mediaJSON+", "+mediaNDJSON)
		return nil, nil, 0, newRequestError(fiber.StatusUnsupportedMediaType, ProblemUnsupportedMediaType,
			reasonContentType, "Content-Type must be application/json or application/x-ndjson (UTF-8)")
	}
	// Raw body: fiber's Ctx.Body would inflate compressed bodies without a size limit.
	b, rerr := decodeBody(format, c.Request().Body())
	if rerr != nil {
		return nil, nil, 0, rerr
	}
	idemKey := c.Get(HeaderIdempotencyKey)
	if idemKey != "" {
		switch {
		case len(b.events) != 1:
			return nil, nil, len(b.events), errInvalidBody(fmt.Sprintf(
				"the %s header applies to single-event requests only; this one has %d events",
				HeaderIdempotencyKey, len(b.events)))
		case !utf8.ValidString(idemKey):
			return nil, nil, len(b.events), errInvalidBody("the " + HeaderIdempotencyKey + " header must be UTF-8")
		}
		idemKey = strings.Clone(idemKey) // fiber reuses header memory after the request
	}

	errs := make([]ProblemError, 0, len(b.problems))
	for _, p := range b.problems {
		errs = append(errs, ProblemError{Index: p.index, Message: p.message})
	}
	invalid := len(b.problems)
	recs := make([]*kgo.Record, 0, len(b.events))
	ids := make([]string, 0, len(b.events))
	ts := ingestTS(recv)
	for i, ev := range b.events {
		if ev == nil {
			continue // listed in b.problems
		}
		rec, id, err := enc.record(ev, idemKey, recv, ts)
		if err != nil {
			var ve *schema.ValidationError
			if !errors.As(err, &ve) {
				s.cfg.Logger.Error("ingest: build record", "topic", topic, "err", err)
				return nil, nil, len(b.events), newRequestError(fiber.StatusInternalServerError, "about:blank", "",
					"the event could not be encoded")
			}
			invalid++
			for _, f := range ve.Fields {
				errs = append(errs, ProblemError{Index: i, Field: f.Field, Message: f.Message})
			}
			if len(ve.Fields) == 0 {
				errs = append(errs, ProblemError{Index: i, Message: ve.Error()})
			}
			continue
		}
		recs = append(recs, rec)
		ids = append(ids, id)
	}
	if invalid > 0 {
		slices.SortStableFunc(errs, func(a, b ProblemError) int { return cmp.Compare(a.Index, b.Index) })
		return nil, nil, len(b.events), errInvalidEvents(errs, invalid, len(b.events))
	}
	return recs, ids, len(recs), nil
}

// reject counts the events of a failed request and, when reason is set, the request.
func (s *Server) reject(topic, reason string, events int) {
	if events > 0 {
		s.metrics.events.WithLabelValues(topic, "rejected").Add(float64(events))
	}
	if reason != "" {
		s.metrics.rejected.WithLabelValues(topic, reason).Inc()
	}
}

// produce hands recs to the producer and waits at most AckTimeout for the
// acknowledgement, even if the producer ignores its context.
func (s *Server) produce(parent context.Context, recs []*kgo.Record) error {
	ctx, cancel := context.WithTimeout(parent, s.cfg.AckTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("ingest: producer panic: %v", r)
			}
		}()
		done <- s.producer.Produce(ctx, recs...)
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("ingest: produce %d records: %w", len(recs), err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ingest: produce %d records: not acknowledged within %s: %w",
			len(recs), s.cfg.AckTimeout, ctx.Err())
	}
}

// firstIDs bounds the event ids a log line carries.
func firstIDs(ids []string, n int) []string {
	if len(ids) > n {
		return ids[:n]
	}
	return ids
}
