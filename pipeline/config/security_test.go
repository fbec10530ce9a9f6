package config_test

import (
	"bytes"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline/config"
)

// securityFlags returns a FlagSet bound to a fresh KafkaSecurity.
func securityFlags(t *testing.T) (*flag.FlagSet, *config.KafkaSecurity) {
	t.Helper()
	fs := flag.NewFlagSet("sluice", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var k config.KafkaSecurity
	k.BindFlags(fs)
	return fs, &k
}

func TestKafkaSecurityFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want config.KafkaSecurity
	}{
		{name: "defaults are plaintext", want: config.KafkaSecurity{}},
		{
			name: "every flag",
			args: []string{"--kafka-tls", "--kafka-tls-ca", "ca.pem", "--kafka-tls-cert", "c.pem", "--kafka-tls-key", "k.pem",
				"--kafka-tls-server-name", "b.example", "--kafka-tls-insecure-skip-verify",
				"--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-sasl-username", "sluice", "--kafka-sasl-password", "pw"},
			want: config.KafkaSecurity{TLS: true, TLSCA: "ca.pem", TLSCert: "c.pem", TLSKey: "k.pem", TLSServerName: "b.example",
				TLSInsecureSkipVerify: true, SASLMechanism: "SCRAM-SHA-512", SASLUsername: "sluice", SASLPassword: "pw"},
		},
		{
			name: "password from the environment",
			args: []string{"--kafka-sasl-mechanism", "SCRAM-SHA-256", "--kafka-sasl-username", "sluice"},
			env:  map[string]string{"SLUICE_KAFKA_SASL_PASSWORD": "s3cret"},
			want: config.KafkaSecurity{SASLMechanism: "SCRAM-SHA-256", SASLUsername: "sluice", SASLPassword: "s3cret"},
		},
		{
			name: "everything from the environment",
			env: map[string]string{"SLUICE_KAFKA_TLS": "true", "SLUICE_KAFKA_TLS_CA": "/ca.pem",
				"SLUICE_KAFKA_TLS_INSECURE_SKIP_VERIFY": "false", "SLUICE_KAFKA_SASL_MECHANISM": "AWS_MSK_IAM"},
			want: config.KafkaSecurity{TLS: true, TLSCA: "/ca.pem", SASLMechanism: "AWS_MSK_IAM"},
		},
		{
			name: "flag wins over the environment",
			args: []string{"--kafka-sasl-password", "from-flag"},
			env:  map[string]string{"SLUICE_KAFKA_SASL_PASSWORD": "from-env"},
			want: config.KafkaSecurity{SASLPassword: "from-flag"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, k := securityFlags(t)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if err := config.ApplyEnv(fs, env(tc.env)); err != nil {
				t.Fatal(err)
			}
			if *k != tc.want {
				t.Errorf("got %+v\nwant %+v", *k, tc.want)
			}
		})
	}
}

func TestKafkaSecurityBadEnvHidesValue(t *testing.T) {
	fs, _ := securityFlags(t)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	err := config.ApplyEnv(fs, env(map[string]string{"SLUICE_KAFKA_TLS": "maybe-secret"}))
	if err == nil || !strings.Contains(err.Error(), "SLUICE_KAFKA_TLS: invalid value for --kafka-tls") {
		t.Fatalf("ApplyEnv = %v, want an error naming SLUICE_KAFKA_TLS", err)
	}
	if strings.Contains(err.Error(), "maybe-secret") {
		t.Errorf("ApplyEnv error shows the value: %v", err)
	}
}

func TestKafkaSecurityUsage(t *testing.T) {
	fs, _ := securityFlags(t)
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.PrintDefaults()
	for _, want := range []string{"-kafka-tls-insecure-skip-verify", "INSECURE", "SLUICE_KAFKA_SASL_PASSWORD",
		"PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or AWS_MSK_IAM"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, out.String())
		}
	}
}
