package ingest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"

	"github.com/gofiber/fiber/v2"
)

// Admission of request bodies. The server streams request bodies (fasthttp's
// StreamRequestBody): its handlers run once the headers and the first byte of a body
// have arrived (streamFromFirstByte), so authentication, the rate limits and the Content-Type check answer
// from the headers, and admitBody, the last step before postEvents, reads the rest of the
// body only once the request holds a reservation of its bytes in a server-wide budget
// (Config.MaxInflightBytes). A request the budget cannot hold answers 503 at once.

// reasonInflightBytes is the rejected_total reason of a request refused because the
// server already holds Config.MaxInflightBytes of request bodies.
const reasonInflightBytes = "inflight_bytes"

// ProblemOverloaded: 503, the server holds as many request bytes or connections as it
// is configured to; retry after Retry-After. Nothing of the request was read or written.
const ProblemOverloaded = "urn:sluice:problem:overloaded"

// errBodyTooLarge is the 413 of a body above Config.MaxBodyBytes.
func (s *Server) errBodyTooLarge() *requestError {
	return newRequestError(fiber.StatusRequestEntityTooLarge, ProblemTooLarge, reasonTooLarge,
		fmt.Sprintf("the body is larger than %d bytes", s.cfg.MaxBodyBytes))
}

// errUnsupportedContentType is the 415 of a Content-Type ingest cannot decode (the same
// problem postEvents answers).
func errUnsupportedContentType() *requestError {
	return newRequestError(fiber.StatusUnsupportedMediaType, ProblemUnsupportedMediaType,
		reasonContentType, "Content-Type must be "+mediaJSON+", "+mediaNDJSON+", "+MediaTypeCloudEvent+
			" or "+MediaTypeCloudEventBatch+" (UTF-8)")
}

// byteBudget is a server-wide bound on bytes held by requests: reserve before reading,
// release when the request ends. Its methods are safe for concurrent use.
type byteBudget struct {
	max  int64
	used atomic.Int64
}

// reserve takes n bytes of the budget, or reports false (taking nothing) when fewer
// than n are left.
func (b *byteBudget) reserve(n int64) bool {
	for {
		used := b.used.Load()
		if used+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

// release returns n reserved bytes.
func (b *byteBudget) release(n int64) { b.used.Add(-n) }

// admitBody checks what the headers of POST /api/v1/events/{topic} can tell before any
// more of the body is read: the Content-Encoding and Content-Type (415), a declared
// Content-Length above MaxBodyBytes (413), and room in the in-flight byte budget (503
// with Retry-After). It then reads the body, at most MaxBodyBytes of it (413 past that,
// chunked bodies included), decompresses it (at most MaxBodyBytes again), holds the
// bytes it takes in the budget until the request ends, and hands it to the next handler
// as the request body. A request for an unknown topic passes untouched (postEvents
// answers 404 without reading the body).
func (s *Server) admitBody(c *fiber.Ctx) error {
	enc, ok := s.encoders[c.Params("topic")]
	if !ok {
		return c.Next()
	}
	topic := enc.topic.Name
	coding, rerr := contentCoding(c.Get(fiber.HeaderContentEncoding))
	if rerr != nil {
		c.Set(fiber.HeaderAcceptEncoding, acceptedCodings)
		s.reject(topic, rerr.reason, 0)
		return rerr
	}
	ct := c.Get(fiber.HeaderContentType)
	if _, ok := bodyFormatOf(ct); !ok {
		if _, ok := cloudEventsModeOf(ct); !ok {
			c.Set("Accept-Post", acceptPost)
			rerr := errUnsupportedContentType()
			s.reject(topic, rerr.reason, 0)
			return rerr
		}
	}
	req := c.Request()
	if !req.IsBodyStream() {
		return c.Next() // already in memory (no body, or a server without streaming)
	}
	declared := int64(req.Header.ContentLength()) // -1: chunked
	if declared > s.cfg.MaxBodyBytes {
		rerr := s.errBodyTooLarge()
		s.reject(topic, rerr.reason, 0)
		return rerr
	}
	// Reserve the most the body can cost: its declared length (the body limit when
	// chunked) and, when compressed, the body limit again for the decompressed copy.
	// Once the sizes are known the reservation shrinks to them, so a request waiting
	// for Kafka holds what its body really takes.
	held := declared
	if held < 0 {
		held = s.cfg.MaxBodyBytes
	}
	if coding != "" {
		held += s.cfg.MaxBodyBytes
	}
	if !s.inflight.reserve(held) {
		s.metrics.rejected.WithLabelValues(topic, reasonInflightBytes).Inc()
		return &requestError{problem: Problem{Type: ProblemOverloaded, Title: "Service Unavailable",
			Status: fiber.StatusServiceUnavailable,
			Detail: "the server holds as many request bytes as it may; retry after Retry-After"},
			retryAfter: true}
	}
	s.metrics.inflightBytes.Add(float64(held))
	defer func() { s.shrink(&held, 0) }()
	body, rerr := s.readBody(req.BodyStream(), declared)
	if rerr != nil {
		s.reject(topic, rerr.reason, 0)
		return rerr
	}
	if coding != "" {
		raw, rerr := s.decoders.decompress(coding, body, s.cfg.MaxBodyBytes)
		if rerr != nil {
			s.reject(topic, rerr.reason, 0)
			return rerr
		}
		// Hand on the decompressed body as is: postEvents sees no coding to undo.
		body = raw
		req.Header.Del(fiber.HeaderContentEncoding)
	}
	s.shrink(&held, int64(len(body)))
	req.SetBodyRaw(body) // ends the stream: the whole body was read
	return c.Next()
}

// shrink lowers a request's reservation *held to n bytes.
func (s *Server) shrink(held *int64, n int64) {
	if d := *held - n; d > 0 {
		s.inflight.release(d)
		s.metrics.inflightBytes.Sub(float64(d))
		*held = n
	}
}

// readBody reads a streamed body of declared length (-1: unknown) into memory, at most
// MaxBodyBytes of it.
func (s *Server) readBody(r io.Reader, declared int64) ([]byte, *requestError) {
	limit := s.cfg.MaxBodyBytes
	if declared >= 0 {
		body := make([]byte, declared)
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, bodyReadError(err)
		}
		return body, nil
	}
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	switch {
	case err != nil:
		return nil, bodyReadError(err)
	case int64(len(body)) > limit:
		return nil, s.errBodyTooLarge()
	}
	return body, nil
}

// bodyReadError is the answer to a body that could not be read: 408 when the client
// took longer than the read timeout, 400 when it ended early or was malformed.
func bodyReadError(err error) *requestError {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return newRequestError(fiber.StatusRequestTimeout, "about:blank", "",
			"the body did not arrive within the read timeout")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errInvalidBody("the body ended before its declared length")
	}
	return errInvalidBody("the body could not be read: " + truncate(err.Error()))
}

// bodyPending reports whether the request declared a body the handlers did not read:
// the connection must then close after the response, since the rest of the body is
// still on the wire where the next request would be read from.
func bodyPending(c *fiber.Ctx) bool {
	req := c.Request()
	return req.IsBodyStream() && req.Header.ContentLength() != 0
}

// retryAfterSeconds is the Retry-After of answers that ask a client to come back.
var retryAfterSeconds = strconv.Itoa(1)
