package config_test

import (
	"bytes"
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/config"
)

const apiSecret = "0123456789abcdef0123456789abcdef"

// apiFlags returns a FlagSet bound to a fresh APIConfig.
func apiFlags(t *testing.T) (*flag.FlagSet, *config.APIConfig) {
	t.Helper()
	fs := flag.NewFlagSet("sluice", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var a config.APIConfig
	a.BindFlags(fs)
	return fs, &a
}

func TestAPIFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want config.APIConfig
	}{
		{name: "defaults", want: config.APIConfig{RateLimitWindow: time.Minute}},
		{
			name: "every flag",
			args: []string{"--jwt-jwks-url", "https://idp.example.com/jwks", "--jwt-issuer", "https://idp.example.com/",
				"--jwt-audience", "sluice", "--rate-limit", "100", "--rate-limit-window", "10s", "--rate-limit-per-ip", "1000",
				"--rate-limit-redis-url", "redis://cache:6379/0", "--trusted-proxies", "10.0.0.0/8, 192.0.2.1",
				"--cors-origins", "https://app.example.com,https://*.example.org", "--cors-allow-credentials"},
			want: config.APIConfig{JWTJWKSURL: "https://idp.example.com/jwks", JWTIssuer: "https://idp.example.com/",
				JWTAudience: "sluice", RateLimit: 100, RateLimitWindow: 10 * time.Second, RateLimitPerIP: 1000,
				RateLimitRedisURL: "redis://cache:6379/0", TrustedProxies: []string{"10.0.0.0/8", "192.0.2.1"},
				CORSOrigins: []string{"https://app.example.com", "https://*.example.org"}, CORSAllowCredentials: true},
		},
		{name: "auth disabled", args: []string{"--auth-disabled"}, want: config.APIConfig{AuthDisabled: true, RateLimitWindow: time.Minute}},
		{
			name: "secret from the environment",
			env:  map[string]string{"SLUICE_JWT_HS256_SECRET": apiSecret, "SLUICE_RATE_LIMIT": "5", "SLUICE_CORS_ORIGINS": "http://localhost:3000"},
			want: config.APIConfig{JWTHS256Secret: apiSecret, RateLimit: 5, RateLimitWindow: time.Minute, CORSOrigins: []string{"http://localhost:3000"}},
		},
		{
			name: "flag wins over the environment",
			args: []string{"--rate-limit", "7"},
			env:  map[string]string{"SLUICE_RATE_LIMIT": "5"},
			want: config.APIConfig{RateLimit: 7, RateLimitWindow: time.Minute},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, a := apiFlags(t)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if err := config.ApplyEnv(fs, env(tc.env)); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*a, tc.want) {
				t.Errorf("got  %+v\nwant %+v", *a, tc.want)
			}
			if err := a.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestAPIValidate(t *testing.T) {
	valid := func(edit func(*config.APIConfig)) config.APIConfig {
		a := config.APIConfig{JWTHS256Secret: apiSecret, RateLimitWindow: time.Minute}
		if edit != nil {
			edit(&a)
		}
		return a
	}
	for _, tc := range []struct {
		name string
		cfg  config.APIConfig
		// want lists the flags the error must name; none: valid.
		want []string
	}{
		{name: "secret", cfg: valid(nil)},
		{name: "nothing", cfg: config.APIConfig{RateLimitWindow: time.Minute}},
		{name: "JWKS on loopback over http", cfg: valid(func(a *config.APIConfig) { a.JWTHS256Secret, a.JWTJWKSURL = "", "http://127.0.0.1:9000/jwks" })},
		{name: "wildcard origin", cfg: valid(func(a *config.APIConfig) { a.CORSOrigins = []string{"*"} })},
		{name: "IPv6 proxy", cfg: valid(func(a *config.APIConfig) { a.TrustedProxies = []string{"2001:db8::/32", "::1"} })},
		{name: "disabled with a secret", cfg: valid(func(a *config.APIConfig) { a.AuthDisabled = true }), want: []string{"--auth-disabled"}},
		{name: "secret and JWKS", cfg: valid(func(a *config.APIConfig) { a.JWTJWKSURL = "https://idp.example.com/jwks" }), want: []string{"--jwt-hs256-secret"}},
		{name: "short secret", cfg: valid(func(a *config.APIConfig) { a.JWTHS256Secret = "tooshort" }), want: []string{"--jwt-hs256-secret: must be at least 32 bytes (got 8)"}},
		{name: "JWKS over http", cfg: valid(func(a *config.APIConfig) { a.JWTHS256Secret, a.JWTJWKSURL = "", "http://idp.example.com/jwks" }), want: []string{"--jwt-jwks-url"}},
		{name: "JWKS without scheme", cfg: valid(func(a *config.APIConfig) { a.JWTHS256Secret, a.JWTJWKSURL = "", "idp.example.com" }), want: []string{"--jwt-jwks-url"}},
		{name: "issuer and audience without key", cfg: config.APIConfig{JWTIssuer: "i", JWTAudience: "a", RateLimitWindow: time.Minute}, want: []string{"--jwt-issuer", "--jwt-audience"}},
		{name: "negative limits", cfg: valid(func(a *config.APIConfig) { a.RateLimit, a.RateLimitPerIP = -1, -2 }), want: []string{"--rate-limit: ", "--rate-limit-per-ip"}},
		{name: "sub-second window", cfg: valid(func(a *config.APIConfig) { a.RateLimitWindow = 100 * time.Millisecond }), want: []string{"--rate-limit-window"}},
		{name: "redis URL scheme", cfg: valid(func(a *config.APIConfig) { a.RateLimitRedisURL = "http://cache:6379" }), want: []string{"--rate-limit-redis-url"}},
		{name: "bad proxy", cfg: valid(func(a *config.APIConfig) { a.TrustedProxies = []string{"lb.internal"} }), want: []string{"--trusted-proxies"}},
		{name: "wildcard with credentials", cfg: valid(func(a *config.APIConfig) { a.CORSOrigins, a.CORSAllowCredentials = []string{"*"}, true }), want: []string{"--cors-origins"}},
		{name: "wildcard among origins", cfg: valid(func(a *config.APIConfig) { a.CORSOrigins = []string{"https://a.example.com", "*"} }), want: []string{"--cors-origins"}},
		{name: "origin with path", cfg: valid(func(a *config.APIConfig) { a.CORSOrigins = []string{"https://a.example.com/app"} }), want: []string{"--cors-origins"}},
		{name: "origin without scheme", cfg: valid(func(a *config.APIConfig) { a.CORSOrigins = []string{"a.example.com"} }), want: []string{"--cors-origins"}},
		{name: "credentials without origins", cfg: valid(func(a *config.APIConfig) { a.CORSAllowCredentials = true }), want: []string{"--cors-allow-credentials"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %+v", tc.cfg)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			if tc.cfg.JWTHS256Secret != "" && strings.Contains(err.Error(), tc.cfg.JWTHS256Secret) {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
}

func TestAPIRequireAuth(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  config.APIConfig
		ok   bool
	}{
		{"nothing", config.APIConfig{}, false},
		{"only an issuer", config.APIConfig{JWTIssuer: "i"}, false},
		{"disabled", config.APIConfig{AuthDisabled: true}, true},
		{"secret", config.APIConfig{JWTHS256Secret: apiSecret}, true},
		{"JWKS", config.APIConfig{JWTJWKSURL: "https://idp.example.com/jwks"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.RequireAuth()
			if (err == nil) != tc.ok {
				t.Fatalf("RequireAuth = %v, want ok %v", err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "--auth-disabled") {
				t.Errorf("error %q does not mention --auth-disabled", err)
			}
		})
	}
}

func TestAPIUsage(t *testing.T) {
	fs, _ := apiFlags(t)
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.PrintDefaults()
	for _, want := range []string{"-auth-disabled", "WITHOUT authentication", "SLUICE_JWT_HS256_SECRET", "-jwt-jwks-url",
		"-rate-limit-window duration", "(default 1m0s)", "-cors-origins", "-trusted-proxies"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, out.String())
		}
	}
}
