package schema

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sluicehq/sluice/pipeline/config"
)

// Option configures a Registry.
type Option func(*Registry)

// WithCompatibility names the compatibility mode of each subject (one of
// config.CompatibilityModes; "" means config.DefaultCompatibility). Register sets it on
// the registry's subject config (PUT /config/{subject}) before it registers there.
func WithCompatibility(modeFor func(subject string) string) Option {
	return func(r *Registry) { r.compatFor = modeFor }
}

// WithLocalCheck makes Register check the subject's mode itself too, with hamba/avro's
// schema resolution rules, before it asks the registry. Only for registries that store a
// subject's mode but do not enforce it, as the embedded one of sluice dev (franz-go's
// srfake) does not: a real registry checks the same rules, and is the one authority for
// every producer, Sluice or not.
func WithLocalCheck() Option {
	return func(r *Registry) { r.localCheck = true }
}

// RegistryOptions returns the options of the --registry-* flags in rc.
func RegistryOptions(rc config.Registry) []Option {
	opts := []Option{WithCompatibility(rc.CompatibilityFor)}
	if rc.LocalCheck {
		opts = append(opts, WithLocalCheck())
	}
	return opts
}

// modeOf returns subject's compatibility mode.
func (r *Registry) modeOf(subject string) string {
	if r.compatFor != nil {
		if m := r.compatFor(subject); m != "" {
			return m
		}
	}
	return config.DefaultCompatibility
}

// ensureCompatibility sets subject's mode on the registry, once per Registry and subject,
// and returns it. A registry that lets this principal register schemas but not change
// subject config (role-based access) is accepted when the subject's effective mode is
// already the one wanted.
func (r *Registry) ensureCompatibility(ctx context.Context, subject string) (string, error) {
	mode := r.modeOf(subject)
	if v, ok := r.configured.Load(subject); ok && v.(string) == mode {
		return mode, nil
	}
	var lvl sr.CompatibilityLevel
	if err := lvl.UnmarshalText([]byte(mode)); err != nil {
		return "", fmt.Errorf("schema: subject %s: %w", subject, err)
	}
	res := r.cl.SetCompatibility(ctx, sr.SetCompatibility{Level: lvl}, subject)
	if err := res[0].Err; err != nil {
		if status(err) == http.StatusForbidden {
			got := r.cl.Compatibility(sr.WithParams(ctx, sr.DefaultToGlobal), subject)
			if got[0].Err == nil && got[0].Level == lvl {
				r.configured.Store(subject, mode)
				return mode, nil
			}
		}
		op := fmt.Sprintf("set compatibility %s on subject %s", mode, subject)
		if status(err) == http.StatusUnprocessableEntity {
			return "", fmt.Errorf("schema: %s: the registry refused the mode: %s", op, describe(err))
		}
		return "", fmt.Errorf("%w: %s: %s", ErrRegistryUnavailable, op, describe(err))
	}
	r.configured.Store(subject, mode)
	return mode, nil
}

// refusedErr classifies a failed registration of subject under mode: a 409 is the
// registry's compatibility check refusing it (ErrIncompatible, with the registry's
// message); everything else as registryErr.
func refusedErr(subject, mode string, err error) error {
	if status(err) == http.StatusConflict {
		return fmt.Errorf("%w: the registry refused the schema of subject %s under compatibility %s: %s",
			ErrIncompatible, subject, mode, describe(err))
	}
	return registryErr("register "+subject, err, nil)
}

// checkLocally checks next against the versions of subject that mode compares it with:
// the latest one, or every one for the _TRANSITIVE modes. BACKWARD: next reads what the
// old schema wrote; FORWARD: the old schema reads what next writes; FULL: both.
func (r *Registry) checkLocally(ctx context.Context, subject, mode string, next *avro.RecordSchema, latest sr.SubjectSchema, latestParsed *avro.RecordSchema) error {
	base, transitive := strings.CutSuffix(mode, "_TRANSITIVE")
	if base == config.CompatNone {
		return nil
	}
	type version struct {
		n  int
		rs *avro.RecordSchema
	}
	olds := []version{{latest.Version, latestParsed}}
	if transitive {
		all, err := r.cl.Schemas(ctx, subject)
		if err != nil {
			return registryErr("versions of "+subject, err, nil)
		}
		olds = olds[:0]
		for _, ss := range all {
			rs, err := parseRecord(ss.Schema.Schema)
			if err != nil || ss.Type != sr.TypeAvro {
				return fmt.Errorf("%w: subject %s: version %d is not an Avro record schema", ErrIncompatible, subject, ss.Version)
			}
			olds = append(olds, version{ss.Version, rs})
		}
	}
	compat := avro.NewSchemaCompatibility()
	for _, old := range olds {
		var err error
		if base == config.CompatBackward || base == config.CompatFull {
			err = compat.Compatible(next, old.rs)
		}
		if err == nil && (base == config.CompatForward || base == config.CompatFull) {
			err = compat.Compatible(old.rs, next)
		}
		if err != nil {
			return fmt.Errorf("%w: subject %s is not %s compatible with version %d (checked by sluice, --registry-local-check): %w",
				ErrIncompatible, subject, mode, old.n, err)
		}
	}
	return nil
}

// status returns the HTTP status of a registry error response, 0 if err is not one.
func status(err error) int {
	var re *sr.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// describe renders a registry error response as "HTTP 409, error code 409: message".
func describe(err error) string {
	var re *sr.ResponseError
	if !errors.As(err, &re) {
		return err.Error()
	}
	msg := re.Message
	if msg == "" {
		msg = strings.TrimSpace(string(re.Raw))
	}
	if re.ErrorCode != 0 {
		return fmt.Sprintf("HTTP %d, error code %d: %s", re.StatusCode, re.ErrorCode, msg)
	}
	return fmt.Sprintf("HTTP %d: %s", re.StatusCode, msg)
}
