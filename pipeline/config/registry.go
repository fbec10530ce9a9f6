package config

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/sluicehq/sluice/pipeline/wire"
)

// Compatibility modes of a schema registry subject, as Confluent's Schema Registry names
// them (README.md, "Connecting to a secured schema registry"). BACKWARD, the registry's
// own default, is Sluice's too: a consumer on the new schema can read what was written
// with the one registered before it.
const (
	CompatBackward           = "BACKWARD"
	CompatBackwardTransitive = "BACKWARD_TRANSITIVE"
	CompatForward            = "FORWARD"
	CompatForwardTransitive  = "FORWARD_TRANSITIVE"
	CompatFull               = "FULL"
	CompatFullTransitive     = "FULL_TRANSITIVE"
	CompatNone               = "NONE"
)

// CompatibilityModes lists every mode --registry-compatibility accepts.
var CompatibilityModes = []string{
	CompatBackward, CompatBackwardTransitive, CompatForward, CompatForwardTransitive,
	CompatFull, CompatFullTransitive, CompatNone,
}

// DefaultCompatibility is the mode of every subject not named in
// --registry-subject-compatibility.
const DefaultCompatibility = CompatBackward

// Registry configures how services reach the schema registry: authentication (HTTP
// basic auth, a bearer token, or mutual TLS, each optional) and the compatibility mode
// Sluice sets on each subject it registers at start-up. schema.NewClient builds the
// client from it; Validate names the bad flag.
type Registry struct {
	// Username and Password are HTTP basic auth credentials (Confluent Cloud: an API key
	// and secret). Pass the password as SLUICE_REGISTRY_PASSWORD rather than on the
	// command line, where ps shows it.
	Username, Password string
	// BearerToken is sent as "Authorization: Bearer <token>"; it excludes basic auth.
	// Pass it as SLUICE_REGISTRY_BEARER_TOKEN.
	BearerToken string
	// TLSCA is a PEM file of the CAs that sign the registry's certificate. Empty: system
	// roots.
	TLSCA string
	// TLSCert and TLSKey are the PEM client certificate and key for mutual TLS.
	TLSCert, TLSKey string
	// Compatibility is the mode set on every subject Sluice registers (one of
	// CompatibilityModes). Empty: DefaultCompatibility.
	Compatibility string
	// SubjectCompatibility overrides Compatibility per subject ("purchases-value" ->
	// "FULL").
	SubjectCompatibility map[string]string
	// LocalCheck makes Sluice check each subject's mode itself as well, for a registry
	// that stores the mode but does not enforce it (the embedded one of sluice dev). A
	// real registry is the authority; leave it off there.
	LocalCheck bool
}

// BindFlags registers the --registry-* auth and compatibility flags on fs (registering
// resets r to the zero value, which means BACKWARD everywhere and no auth). Like every flag they also read SLUICE_<FLAG> through
// ApplyEnv: SLUICE_REGISTRY_PASSWORD, SLUICE_REGISTRY_BEARER_TOKEN.
func (r *Registry) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&r.Username, "registry-username", "", "schema registry basic-auth `user` (Confluent Cloud: the API key)")
	fs.StringVar(&r.Password, "registry-password", "", "schema registry basic-auth `password`; prefer the SLUICE_REGISTRY_PASSWORD environment variable, since command lines are visible to other users")
	fs.StringVar(&r.BearerToken, "registry-bearer-token", "", "schema registry bearer `token` (instead of basic auth); prefer SLUICE_REGISTRY_BEARER_TOKEN")
	fs.StringVar(&r.TLSCA, "registry-tls-ca", "", "PEM `file` of the CAs that sign the registry certificate (default: system roots)")
	fs.StringVar(&r.TLSCert, "registry-tls-cert", "", "PEM client certificate `file` for mutual TLS to the registry (with --registry-tls-key)")
	fs.StringVar(&r.TLSKey, "registry-tls-key", "", "PEM client key `file` for mutual TLS to the registry (with --registry-tls-cert)")
	// Empty means DefaultCompatibility (CompatibilityFor), so DefaultService stays zero here.
	r.Compatibility = ""
	fs.Var((*compatValue)(&r.Compatibility), "registry-compatibility",
		"compatibility `mode` set on every subject at start-up and enforced by the registry: "+strings.Join(CompatibilityModes, ", ")+" (default "+DefaultCompatibility+")")
	r.SubjectCompatibility = nil
	fs.Var((*subjectCompatValue)(&r.SubjectCompatibility), "registry-subject-compatibility",
		"per-subject compatibility, comma-separated `subject=MODE` list (e.g. purchases-value=FULL); other subjects use --registry-compatibility")
	fs.BoolVar(&r.LocalCheck, "registry-local-check", false, "also check compatibility in sluice, for a registry that does not enforce it (the embedded one of sluice dev)")
}

// CompatibilityFor returns the mode of subject: its --registry-subject-compatibility
// entry, else Compatibility, else DefaultCompatibility.
func (r Registry) CompatibilityFor(subject string) string {
	if m, ok := r.SubjectCompatibility[subject]; ok {
		return m
	}
	if r.Compatibility != "" {
		return r.Compatibility
	}
	return DefaultCompatibility
}

// ForPipeline returns r with the compatibility modes the pipeline file sets per topic
// (Topic.Compatibility) on the topic's raw and clean subjects. A subject named in
// --registry-subject-compatibility keeps the flag's mode: the command line overrides
// the file.
func (r Registry) ForPipeline(p *Pipeline) Registry {
	var modes map[string]string
	for _, t := range p.Topics {
		if t.Compatibility == "" {
			continue
		}
		for _, subject := range []string{wire.Subject(t.Name), wire.Subject(wire.CleanTopic(t.Name))} {
			if _, set := r.SubjectCompatibility[subject]; set {
				continue
			}
			if modes == nil {
				modes = maps.Clone(r.SubjectCompatibility)
				if modes == nil {
					modes = map[string]string{}
				}
			}
			modes[subject] = t.Compatibility
		}
	}
	if modes != nil {
		r.SubjectCompatibility = modes
	}
	return r
}

// Validate checks r against the registry URL it will be used with, naming the bad flag.
// All problems are reported together.
func (r Registry) Validate(registryURL string) error {
	var errs []error
	add := func(flag, format string, a ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flag, fmt.Sprintf(format, a...)))
	}
	switch {
	case r.Username != "" && r.Password == "":
		add("registry-password", "required with --registry-username (set SLUICE_REGISTRY_PASSWORD)")
	case r.Username == "" && r.Password != "":
		add("registry-username", "required with --registry-password")
	}
	if r.BearerToken != "" && (r.Username != "" || r.Password != "") {
		add("registry-bearer-token", "use either a bearer token or basic auth (--registry-username), not both")
	}
	if (r.TLSCert == "") != (r.TLSKey == "") {
		add("registry-tls-cert", "--registry-tls-cert and --registry-tls-key go together (got cert %q, key %q)", r.TLSCert, r.TLSKey)
	}
	if r.TLSCA != "" || r.TLSCert != "" {
		if u, err := url.Parse(registryURL); err == nil && u.Scheme != "https" {
			add("registry-tls-ca", "TLS settings need an https:// --registry-url (got %q)", registryURL)
		}
	}
	if r.Compatibility != "" && !slices.Contains(CompatibilityModes, r.Compatibility) {
		add("registry-compatibility", "must be one of %s (got %q)", strings.Join(CompatibilityModes, ", "), r.Compatibility)
	}
	for _, s := range sortedKeys(r.SubjectCompatibility) {
		if m := r.SubjectCompatibility[s]; !slices.Contains(CompatibilityModes, m) {
			add("registry-subject-compatibility", "subject %s: must be one of %s (got %q)", s, strings.Join(CompatibilityModes, ", "), m)
		}
	}
	return errors.Join(errs...)
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// parseCompat accepts a mode in any case ("full_transitive").
func parseCompat(s string) (string, error) {
	m := strings.ToUpper(strings.TrimSpace(s))
	if !slices.Contains(CompatibilityModes, m) {
		return "", fmt.Errorf("unknown compatibility %q (want one of %s)", s, strings.Join(CompatibilityModes, ", "))
	}
	return m, nil
}

// compatValue is a flag.Value holding one compatibility mode.
type compatValue string

func (c *compatValue) String() string {
	if c == nil {
		return ""
	}
	return string(*c)
}

func (c *compatValue) Set(s string) error {
	if strings.TrimSpace(s) == "" { // an empty variable (compose's ${X:-}) means the default
		*c = ""
		return nil
	}
	m, err := parseCompat(s)
	if err != nil {
		return err
	}
	*c = compatValue(m)
	return nil
}

// subjectCompatValue is a flag.Value holding subject=MODE pairs. Set replaces the map.
type subjectCompatValue map[string]string

func (v *subjectCompatValue) String() string {
	if v == nil || len(*v) == 0 {
		return ""
	}
	parts := make([]string, 0, len(*v))
	for _, s := range sortedKeys(*v) {
		parts = append(parts, s+"="+(*v)[s])
	}
	return strings.Join(parts, ",")
}

func (v *subjectCompatValue) Set(s string) error {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		subject, mode, ok := strings.Cut(part, "=")
		subject = strings.TrimSpace(subject)
		if !ok || subject == "" {
			return fmt.Errorf("%q: want subject=MODE", part)
		}
		m, err := parseCompat(mode)
		if err != nil {
			return fmt.Errorf("subject %s: %w", subject, err)
		}
		out[subject] = m
	}
	*v = out
	return nil
}
