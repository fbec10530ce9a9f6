// Package deploy holds the files that docker-compose.yml mounts beside those of
// monitoring/ (a Prometheus configuration that scrapes the compose services by name, the
// placeholder for the Snowflake key secret, an example .env) and the tests that check the
// Dockerfile and docker-compose.yml without a Docker engine:
//
//	go test ./deploy/
//
// The compose file is loaded with github.com/compose-spec/compose-go/v2, the loader of
// `docker compose` itself, and checked for what `docker compose config` does not check:
// every mounted file exists in the repository, every Sluice service runs a known
// subcommand and has a health check, Prometheus scrapes each of them, Grafana's
// provisioning resolves, and every variable has a default. It has no Go API.
package deploy
