package process

import (
	"context"
	"slices"

	"github.com/sluicehq/sluice/pipeline/schema"
)

// ProjectedDecoder decodes only the top-level fields a stage reads (schema.Registry
// implements it). The repartition and aggregate stages use it when their Decoder has it:
// they need three or four fields of every record, not all of them.
type ProjectedDecoder interface {
	DecodeProjected(ctx context.Context, b []byte, p *schema.Projection) (map[string]any, int, error)
}

var _ ProjectedDecoder = (*schema.Registry)(nil)

// projection is the fields an aggregation's stages read: event_time, the group and
// extra (the measured fields).
func projection(groupBy []string, extra ...string) *schema.Projection {
	fields := []string{"event_time"}
	for _, f := range slices.Concat(groupBy, extra) {
		if f != "" && !slices.Contains(fields, f) {
			fields = append(fields, f)
		}
	}
	return schema.NewProjection(fields...)
}

// decodeProjected decodes b with p when d can project (p non-nil), else whole.
func decodeProjected(ctx context.Context, d Decoder, p *schema.Projection, b []byte) (map[string]any, error) {
	if pd, ok := d.(ProjectedDecoder); ok && p != nil {
		m, _, err := pd.DecodeProjected(ctx, b, p)
		return m, err
	}
	m, _, err := d.Decode(ctx, b)
	return m, err
}
