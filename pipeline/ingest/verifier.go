package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Verifier checks bearer tokens exactly as the API does (same AuthConfig, parser, key
// handling and JWKS refresh), for other HTTP servers of Sluice such as the console.
type Verifier struct{ a *authenticator }

// NewVerifier returns the verifier of cfg, which must turn authentication on (an
// HS256 secret or a JWKS URL). now defaults to time.Now, logger to discarding. Close
// stops its JWKS refresh.
func NewVerifier(cfg AuthConfig, now func() time.Time, logger *slog.Logger) (*Verifier, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if !cfg.configured() {
		return nil, errors.New("auth: a JWT HS256 secret or a JWKS URL is required")
	}
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a, err := newAuthenticator(cfg, now, logger)
	if err != nil {
		return nil, err
	}
	return &Verifier{a: a}, nil
}

// Verify checks the bearer token raw (without the "Bearer " prefix) and returns its
// principal; the error says why a token is refused, in words fit for a 401 answer.
func (v *Verifier) Verify(ctx context.Context, raw string) (Principal, error) {
	if len(raw) > maxBearerTokenBytes {
		return Principal{}, errors.New("the bearer token is too long")
	}
	p, err := v.a.principal(ctx, raw)
	if err != nil {
		return Principal{}, errors.New(tokenProblem(err))
	}
	return p, nil
}

// BearerToken returns the token of an Authorization header value "Bearer <token>", or
// "" when there is none or it is not well-formed.
func BearerToken(header string) string {
	t, _ := bearerToken(header)
	return t
}

// Close stops the JWKS refresh.
func (v *Verifier) Close() { v.a.close() }
