package ingest

import (
	"context"
	"fmt"

	"github.com/goccy/go-json"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// TopicInfo describes one topic in the body of GET /api/v1/topics.
type TopicInfo struct {
	Name     string `json:"name"`
	KeyField string `json:"key_field"`
	Subject  string `json:"subject"`
	SchemaID int    `json:"schema_id"`
	// Schema is the Avro schema as a JSON value.
	Schema json.RawMessage `json:"schema"`
}

// Topics is the body of GET /api/v1/topics.
type Topics struct {
	Topics []TopicInfo `json:"topics"`
}

// topicCatalog renders the body of GET /api/v1/topics once; the topics never change
// while a Server runs.
func topicCatalog(topics []Topic) ([]byte, error) {
	out := Topics{Topics: make([]TopicInfo, 0, len(topics))}
	for _, t := range topics {
		sch, err := json.Marshal(t.Codec.Schema)
		if err != nil {
			return nil, fmt.Errorf("ingest: topic %s: render schema: %w", t.Name, err)
		}
		out.Topics = append(out.Topics, TopicInfo{
			Name: t.Name, KeyField: t.KeyField, Subject: t.Subject, SchemaID: t.Codec.ID, Schema: sch,
		})
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("ingest: render topics: %w", err)
	}
	return b, nil
}

// getTopics is GET /api/v1/topics.
func (s *Server) getTopics(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(s.catalog)
}

// healthz is GET /healthz: the process is alive.
func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

// readyz is GET /readyz: 200 when Config.Ready reports the dependencies reachable
// within 2s, else 503.
func (s *Server) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), readyTimeout)
	defer cancel()
	if err := s.cfg.Ready(ctx); err != nil {
		s.cfg.Logger.Warn("ingest: not ready", "err", err)
		return writeProblem(c, Problem{
			Type: ProblemNotReady, Title: "Service Unavailable", Status: fiber.StatusServiceUnavailable,
			Detail: "not ready: " + err.Error(),
		}, false)
	}
	return c.JSON(fiber.Map{"status": "ready"})
}

// metricsHandler is GET /metrics: the Prometheus exposition of Config.Gatherer.
func (s *Server) metricsHandler() fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
}
