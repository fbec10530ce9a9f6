package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Every subcommand reaches Kafka through the same security flags: against a broker that
// requires SCRAM, the right password works and a wrong one (or none) is a clear start-up
// error within seconds, not a hang.
func TestCommandsUseKafkaSecurity(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-256", "sluice", "sluice-secret"), kfake.SeedTopics(3, "purchases"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	broker := c.ListenAddrs()[0]
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // "" means success
	}{
		{"right password from the environment", []string{"--kafka-sasl-mechanism", "SCRAM-SHA-256", "--kafka-sasl-username", "sluice"},
			map[string]string{"SLUICE_KAFKA_SASL_PASSWORD": "sluice-secret"}, ""},
		{"wrong password", []string{"--kafka-sasl-mechanism", "SCRAM-SHA-256", "--kafka-sasl-username", "sluice", "--kafka-sasl-password", "nope"},
			nil, "authentication failed"},
		{"no SASL against a SASL broker", nil, nil, "authentication failed"},
		{"unknown mechanism", []string{"--kafka-sasl-mechanism", "MD5"}, nil, "--kafka-sasl-mechanism"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			args := append([]string{"topics", "--brokers", broker}, tt.args...)
			args = append(args, "describe")
			start := time.Now()
			out, err := runCmd(t, ctx, args...)
			took := time.Since(start)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("err %v", err)
			case tt.wantErr == "" && !strings.Contains(out, "purchases"):
				t.Fatalf("topics describe did not list purchases: %s", out)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err %v, want one mentioning %q", err, tt.wantErr)
			}
			if took > 10*time.Second {
				t.Errorf("took %s: a bad login must fail within seconds", took)
			}
		})
	}
}
