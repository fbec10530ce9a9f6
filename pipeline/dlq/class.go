// Package dlq classifies record-processing errors and turns them into dead letters.
// Retry and dead-letter behaviour are decorators around a Handler (docs/DESIGN.md#decorators).
package dlq

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Handler processes one record and emits its outputs through emit. It never commits;
// the stage commits outputs and input offsets together.
type Handler = func(ctx context.Context, rec *kgo.Record, emit func(*kgo.Record)) error

// Middleware decorates a Handler (docs/DESIGN.md#decorators): DeadLetter, RetryInPlace,
// Guard and Route, each in the file named after it.
type Middleware func(next Handler) Handler

// Chain wraps h in ms, the first outermost: Chain(h, a, b) is a(b(h)).
func Chain(h Handler, ms ...Middleware) Handler {
	for i := len(ms) - 1; i >= 0; i-- {
		h = ms[i](h)
	}
	return h
}

// Class is the closed set of error classes carried in the sluice-error-class header.
type Class string

// The error classes.
const (
	// Permanent errors (undecodable record, unknown schema, rule violation) never succeed
	// on retry: the record goes straight to the dead-letter topic.
	Permanent Class = "permanent"
	// Transient errors (a dependency timing out or refusing) may succeed on retry.
	Transient Class = "transient"
	// Late records arrived after all their windows closed.
	Late Class = "late"
)

// Sentinels that errors wrap to carry their class; test with errors.Is or ClassOf.
var (
	ErrPermanent = errors.New("permanent")
	ErrTransient = errors.New("transient")
)

type classified struct {
	err   error
	class error
}

func (c *classified) Error() string   { return c.err.Error() }
func (c *classified) Unwrap() []error { return []error{c.err, c.class} }
func wrap(err, class error) error     { return &classified{err: err, class: class} }
func isNil(err error) bool            { return err == nil }

// AsPermanent marks err permanent. Nil stays nil.
func AsPermanent(err error) error {
	if isNil(err) {
		return nil
	}
	return wrap(err, ErrPermanent)
}

// AsTransient marks err transient. Nil stays nil.
func AsTransient(err error) error {
	if isNil(err) {
		return nil
	}
	return wrap(err, ErrTransient)
}

// permanence is implemented by errors that carry their class from where they are made
// (pipeline/schema's decode errors).
type permanence interface {
	error
	Permanent() bool
}

// ClassOf returns err's class: the class AsPermanent or AsTransient gave it, else the
// one it carries (a Permanent() bool method anywhere in its chain). Unclassified errors
// are transient: retrying something unknown is safe, dead-lettering it is not.
func ClassOf(err error) Class {
	switch {
	case errors.Is(err, ErrPermanent):
		return Permanent
	case errors.Is(err, ErrTransient):
		return Transient
	}
	if p, ok := errors.AsType[permanence](err); ok && p.Permanent() {
		return Permanent
	}
	return Transient
}
