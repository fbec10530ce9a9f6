package config

import "flag"

// KafkaSecurity holds the Kafka TLS and SASL flags shared by every sluice command. The
// zero value is plaintext without authentication. kafka.SecurityFrom turns it into client
// options; kafka.Security.Validate checks it, naming these flags.
type KafkaSecurity struct {
	// TLS turns on TLS to the brokers; any other TLS field implies it.
	TLS bool
	// TLSCA is a PEM file of the CAs that sign the broker certificates. Empty: system roots.
	TLSCA string
	// TLSCert and TLSKey are the PEM client certificate and key for mutual TLS.
	TLSCert, TLSKey string
	// TLSServerName overrides the name checked in broker certificates. Empty: each
	// broker's host.
	TLSServerName string
	// TLSInsecureSkipVerify accepts any broker certificate: tests and emergencies only.
	TLSInsecureSkipVerify bool
	// SASLMechanism is "" (none), PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or AWS_MSK_IAM.
	SASLMechanism string
	// SASLUsername and SASLPassword are the PLAIN and SCRAM credentials. Pass the password
	// as SLUICE_KAFKA_SASL_PASSWORD rather than on the command line, where ps shows it.
	SASLUsername, SASLPassword string
}

// BindFlags registers the --kafka-tls* and --kafka-sasl-* flags on fs, all defaulting to
// the zero value (registering resets k). Like every flag they also read SLUICE_<FLAG>
// through ApplyEnv, e.g. SLUICE_KAFKA_SASL_PASSWORD.
func (k *KafkaSecurity) BindFlags(fs *flag.FlagSet) {
	fs.BoolVar(&k.TLS, "kafka-tls", false, "connect to Kafka over TLS (implied by any other --kafka-tls-* flag)")
	fs.StringVar(&k.TLSCA, "kafka-tls-ca", "", "PEM `file` of the CAs that sign the broker certificates (default: system roots)")
	fs.StringVar(&k.TLSCert, "kafka-tls-cert", "", "PEM client certificate `file` for mutual TLS (with --kafka-tls-key)")
	fs.StringVar(&k.TLSKey, "kafka-tls-key", "", "PEM client key `file` for mutual TLS (with --kafka-tls-cert)")
	fs.StringVar(&k.TLSServerName, "kafka-tls-server-name", "", "`name` the broker certificates must carry (default: each broker's host)")
	fs.BoolVar(&k.TLSInsecureSkipVerify, "kafka-tls-insecure-skip-verify", false,
		"INSECURE: accept any broker certificate, so anyone on the path can read and change the traffic; tests only")
	fs.StringVar(&k.SASLMechanism, "kafka-sasl-mechanism", "", "SASL `mechanism`: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or AWS_MSK_IAM (credentials from the default AWS chain; needs TLS)")
	fs.StringVar(&k.SASLUsername, "kafka-sasl-username", "", "SASL `user` for PLAIN and SCRAM")
	fs.StringVar(&k.SASLPassword, "kafka-sasl-password", "", "SASL `password` for PLAIN and SCRAM; prefer the SLUICE_KAFKA_SASL_PASSWORD environment variable, since command lines are visible to other users")
}
