package ingest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// HeaderIdempotencyKey is the request header that makes a request's event ids
// deterministic: the key itself is the event_id of a single-event request, and
// "<key>-<index>" that of event index of a batch. A key reused with another body answers
// 422 while it is remembered (Config.IdempotencyTTL); one that cannot make valid event
// ids answers 400.
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
			fmt.Sprintf("topic %q does not exist; GET /api/v1/topics lists the topics", truncate(c.Params("topic"))))
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
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: wire.HeaderRequestID, Value: []byte(rid)})
		}
	}
	if rerr := checkRecordSizes(recs, enc.topic.MaxMessageBytes); rerr != nil {
		s.reject(topic, rerr.reason, len(recs))
		return rerr
	}
	start := time.Now()
	err := s.produce(c.UserContext(), recs)
	s.metrics.produceDuration.WithLabelValues(topic).Observe(time.Since(start).Seconds())
	if err != nil {
		s.cfg.Logger.Warn("ingest: produce failed", "request_id", rid, "topic", topic, "events", len(recs), "err", err)
		e := produceError(err, ids)
		s.reject(topic, e.reason, len(recs))
		return e
	}
	s.metrics.events.WithLabelValues(topic, "accepted").Add(float64(len(recs)))
	if s.cfg.Logger.Enabled(c.UserContext(), slog.LevelDebug) { // firstIDs allocates; skip it when nobody reads the line
		s.cfg.Logger.Debug("ingest: accepted", "request_id", rid, "topic", topic, "events", len(recs), "event_ids", firstIDs(ids, 10))
	}
	return c.Status(fiber.StatusAccepted).JSON(Accepted{Accepted: len(recs), EventIDs: ids})
}

// records reads and validates the request and builds one record per event. Every
// failure is a *requestError, returned with the number of events the request held (0
// when they could not be counted).
func (s *Server) records(c *fiber.Ctx, enc *Encoder, recv time.Time) ([]*kgo.Record, []string, int, *requestError) {
	topic := enc.topic.Name
	coding, rerr := contentCoding(c.Get(fiber.HeaderContentEncoding))
	if rerr != nil {
		c.Set(fiber.HeaderAcceptEncoding, acceptedCodings)
		return nil, nil, 0, rerr
	}
	ct := c.Get(fiber.HeaderContentType)
	mode := ceNone
	format, ok := bodyFormatOf(ct)
	if !ok {
		if mode, ok = cloudEventsModeOf(ct); ok {
			format = formatJSON
		}
	}
	if !ok {
		c.Set("Accept-Post", acceptPost)
		return nil, nil, 0, newRequestError(fiber.StatusUnsupportedMediaType, ProblemUnsupportedMediaType,
			reasonContentType, "Content-Type must be "+mediaJSON+", "+mediaNDJSON+", "+MediaTypeCloudEvent+
				" or "+MediaTypeCloudEventBatch+" (UTF-8)")
	}
	hdr := &c.Request().Header
	var binary ceAttrs
	if mode == ceNone {
		var isCE bool
		if binary, isCE = binaryAttrs(hdr); isCE {
			mode = ceBinary
		}
	}
	extra, rerr := clientHeaders(hdr)
	if rerr != nil {
		return nil, nil, 0, rerr
	}
	// Raw body: fiber's Ctx.Body would inflate compressed bodies without a size limit.
	raw, rerr := s.decoders.decompress(coding, c.Request().Body(), s.cfg.MaxBodyBytes)
	if rerr != nil {
		return nil, nil, 0, rerr
	}
	b, rerr := decodeBody(format, raw)
	if rerr != nil {
		return nil, nil, 0, rerr
	}
	ceHeaders, rerr := unwrapCloudEvents(mode, binary, &b, topic)
	if rerr != nil {
		return nil, nil, len(b.events), rerr
	}
	idemKey := c.Get(HeaderIdempotencyKey)
	if idemKey != "" {
		if rerr := checkIdempotencyKey(enc.topic, idemKey, len(b.events)); rerr != nil {
			return nil, nil, len(b.events), rerr
		}
		idemKey = strings.Clone(idemKey) // fiber reuses header memory after the request
	}

	errs := make([]ProblemError, 0, len(b.problems))
	for _, p := range b.problems {
		errs = append(errs, ProblemError{Index: p.index, Field: p.field, Message: p.message})
	}
	invalid := 0
	for _, ev := range b.events {
		if ev == nil {
			invalid++ // listed in b.problems
		}
	}
	recs := make([]*kgo.Record, 0, len(b.events))
	ids := make([]string, 0, len(b.events))
	ts := ingestTS(recv)
	for i, ev := range b.events {
		if ev == nil {
			continue
		}
		rec, id, err := enc.record(ev, idempotencyID(idemKey, i, len(b.events)), recv, ts)
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
		if ceHeaders != nil {
			rec.Headers = append(rec.Headers, ceHeaders[i]...)
		}
		rec.Headers = append(rec.Headers, extra...)
		recs = append(recs, rec)
		ids = append(ids, id)
	}
	if invalid > 0 {
		slices.SortStableFunc(errs, func(a, b ProblemError) int { return cmp.Compare(a.Index, b.Index) })
		return nil, nil, len(b.events), errInvalidEvents(errs, invalid, len(b.events))
	}
	// Last: a key is bound to its body only once the body is known valid.
	if idemKey != "" && s.keys.remember(topic, idemKey, raw) {
		return nil, nil, len(b.events), errKeyReused()
	}
	return recs, ids, len(recs), nil
}

// acceptPost is the Accept-Post header of a 415 for an unsupported Content-Type.
const acceptPost = mediaJSON + ", " + mediaNDJSON + ", " + MediaTypeCloudEvent + ", " + MediaTypeCloudEventBatch

// HeaderClientPrefix starts the name of request headers that ingest copies to every
// record of the request: "X-Sluice-Header-Tenant: acme" becomes the record header
// "tenant" = "acme". The record header name is the rest of the request header name,
// lowercased: 1-64 characters of A-Z a-z 0-9 . _ -, and not starting with "sluice-"
// (ingest's own headers) or "ce_" (CloudEvents attributes, set from the CloudEvent).
// A request may carry at most 16 of them, each value at most 1024 bytes, each name
// once; anything else answers 400.
const HeaderClientPrefix = "X-Sluice-Header-"

// Limits on client record headers.
const (
	maxClientHeaders     = 16
	maxClientHeaderName  = 64
	maxClientHeaderValue = 1024
)

// clientHeaders collects the X-Sluice-Header-* request headers as record headers.
func clientHeaders(h *fasthttp.RequestHeader) ([]kgo.RecordHeader, *requestError) {
	var (
		out     []kgo.RecordHeader
		problem string
		n       int
	)
	h.VisitAll(func(k, v []byte) {
		if problem != "" || len(k) < len(HeaderClientPrefix) ||
			!bytes.EqualFold(k[:len(HeaderClientPrefix)], []byte(HeaderClientPrefix)) {
			return
		}
		n++
		name := strings.ToLower(string(k[len(HeaderClientPrefix):]))
		full := HeaderClientPrefix + name
		switch {
		case n > maxClientHeaders:
			problem = fmt.Sprintf("at most %d %s* headers are allowed", maxClientHeaders, HeaderClientPrefix)
		case name == "":
			problem = HeaderClientPrefix + " needs a name after the prefix"
		case len(name) > maxClientHeaderName:
			problem = fmt.Sprintf("header %q...: the name after the prefix is longer than %d characters",
				full[:len(HeaderClientPrefix)+maxClientHeaderName], maxClientHeaderName)
		case !validHeaderName(name):
			problem = fmt.Sprintf("header %q: the name after the prefix may hold only A-Z a-z 0-9 . _ -", truncate(full))
		case strings.HasPrefix(name, wire.HeaderPrefix), strings.HasPrefix(name, "ce_"):
			problem = fmt.Sprintf(`header %q: names starting with "sluice-" or "ce_" are reserved`, full)
		case len(v) > maxClientHeaderValue:
			problem = fmt.Sprintf("header %q: the value is longer than %d bytes", full, maxClientHeaderValue)
		default:
			for _, o := range out {
				if o.Key == name {
					problem = fmt.Sprintf("header %q is given more than once", full)
					return
				}
			}
			// Copies: fasthttp reuses header memory after the request.
			out = append(out, kgo.RecordHeader{Key: name, Value: bytes.Clone(v)})
		}
	})
	if problem != "" {
		return nil, errInvalidBody(problem)
	}
	return out, nil
}

// validHeaderName reports whether name holds only A-Z a-z 0-9 . _ -.
func validHeaderName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
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

// produce hands recs to the producer with AckTimeout as the deadline, and waits for its
// answer at most CommitGrace longer (a transactional producer may be learning the
// outcome of a commit it sent), even if the producer ignores its context.
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
	t := time.NewTimer(s.cfg.AckTimeout + s.cfg.CommitGrace)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("ingest: produce %d records: %w", len(recs), err)
		}
		return nil
	case <-t.C:
		return fmt.Errorf("ingest: produce %d records: no answer within %s: %w",
			len(recs), s.cfg.AckTimeout+s.cfg.CommitGrace, kafka.ErrOutcomeUnknown)
	}
}

// firstIDs bounds the event ids a log line carries.
func firstIDs(ids []string, n int) []string {
	if len(ids) > n {
		return ids[:n]
	}
	return ids
}
