package ingest

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/goccy/go-json"
	"github.com/gofiber/fiber/v2"
)

// Problem type URIs of the ingest API. Other errors (unknown route, wrong method, internal
// error) use "about:blank" with the HTTP status text as title.
const (
	// ProblemInvalid: 400, the body or some events are invalid; nothing was written.
	ProblemInvalid = "urn:sluice:problem:invalid"
	// ProblemUnknownTopic: 404, no such topic.
	ProblemUnknownTopic = "urn:sluice:problem:unknown-topic"
	// ProblemTooLarge: 413, the body or the number of events is above the limit.
	ProblemTooLarge = "urn:sluice:problem:too-large"
	// ProblemUnsupportedMediaType: 415, Content-Type or Content-Encoding not accepted.
	ProblemUnsupportedMediaType = "urn:sluice:problem:unsupported-media-type"
	// ProblemUnavailable: 503, Kafka did not acknowledge in time; retry after Retry-After.
	ProblemUnavailable = "urn:sluice:problem:unavailable"
	// ProblemNotReady: 503 from /readyz.
	ProblemNotReady = "urn:sluice:problem:not-ready"
)

// MediaTypeProblem is the Content-Type of every error response.
const MediaTypeProblem = "application/problem+json"

// maxProblemErrors bounds the per-event entries of one problem body.
const maxProblemErrors = 100

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Errors lists per-event problems of an invalid request (at most 100).
	Errors []ProblemError `json:"errors,omitempty"`
	// EventIDs are the ids the request's events were given, in request order, when
	// they may have been written (504, outcome unknown): a retry with these ids in the
	// events is deduplicated.
	EventIDs []string `json:"event_ids,omitempty"`
}

// ProblemError is one problem of one event of a request.
type ProblemError struct {
	// Index is the event's position in the request: 0 for a single object, the array
	// index, or the number of the non-blank NDJSON line counted from 0.
	Index int `json:"index"`
	// Field is the offending field; empty when the event as a whole is wrong.
	Field   string `json:"field"`
	Message string `json:"message"`
}

// requestError is a failed request: the problem to answer with and the metric reason.
type requestError struct {
	problem    Problem
	reason     string // rejected_total reason; empty: not counted as a rejection
	retryAfter bool
}

// Error makes requestError usable as a fiber handler error.
func (e *requestError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.problem.Status, e.problem.Title, e.problem.Detail)
}

func newRequestError(status int, typ, reason, detail string) *requestError {
	title := http.StatusText(status)
	return &requestError{problem: Problem{Type: typ, Title: title, Status: status, Detail: detail}, reason: reason}
}

func errInvalidBody(detail string) *requestError {
	return newRequestError(fiber.StatusBadRequest, ProblemInvalid, reasonInvalid, detail)
}

func errTooManyEvents(n int) *requestError {
	detail := fmt.Sprintf("%d events in one request; at most %d are allowed", n, MaxEventsPerRequest)
	if n > MaxEventsPerRequest+1 {
		detail = fmt.Sprintf("more than %d events in one request", MaxEventsPerRequest)
	}
	return newRequestError(fiber.StatusRequestEntityTooLarge, ProblemTooLarge, reasonTooLarge, detail)
}

// errInvalidEvents reports per-event problems; total is the number of invalid events.
func errInvalidEvents(errs []ProblemError, invalid, total int) *requestError {
	detail := fmt.Sprintf("%d of %d events are invalid; nothing was accepted", invalid, total)
	if len(errs) > maxProblemErrors {
		errs = errs[:maxProblemErrors]
		detail += fmt.Sprintf(" (first %d problems listed)", maxProblemErrors)
	}
	e := errInvalidBody(detail)
	e.problem.Errors = errs
	return e
}

// writeProblem answers with p as application/problem+json.
func writeProblem(c *fiber.Ctx, p Problem, retryAfter bool) error {
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("ingest: encode problem: %w", err)
	}
	if retryAfter {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(1))
	}
	c.Status(p.Status)
	c.Set(fiber.HeaderContentType, MediaTypeProblem)
	return c.Send(body)
}

// blankProblem is the "about:blank" problem of a plain HTTP status.
func blankProblem(status int, detail string) Problem {
	return Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail}
}
