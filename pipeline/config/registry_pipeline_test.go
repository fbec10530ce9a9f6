package config

import (
	"strings"
	"testing"
)

// A topic's compatibility in the pipeline file reaches its raw and clean subjects; a
// subject named in --registry-subject-compatibility keeps the flag's mode, and topics
// without one keep --registry-compatibility.
func TestRegistryForPipeline(t *testing.T) {
	p, err := Parse([]byte(`
topics:
  - name: purchases
    compatibility: FULL_TRANSITIVE
  - name: clicks
    compatibility: NONE
  - name: page_views
`))
	if err != nil {
		t.Fatal(err)
	}
	flags := Registry{Compatibility: CompatForward,
		SubjectCompatibility: map[string]string{"clicks-value": CompatBackward}}
	r := flags.ForPipeline(p)
	for subject, want := range map[string]string{
		"purchases-value":       CompatFullTransitive,
		"purchases.clean-value": CompatFullTransitive,
		"clicks-value":          CompatBackward, // the flag wins
		"clicks.clean-value":    CompatNone,
		"page_views-value":      CompatForward, // --registry-compatibility
		"agg.x-value":           CompatForward,
	} {
		if got := r.CompatibilityFor(subject); got != want {
			t.Errorf("%s: mode %s, want %s", subject, got, want)
		}
	}
	if len(flags.SubjectCompatibility) != 1 {
		t.Errorf("ForPipeline changed the flags' map: %v", flags.SubjectCompatibility)
	}
	if got := (Registry{}).ForPipeline(Default()).CompatibilityFor("purchases-value"); got != DefaultCompatibility {
		t.Errorf("built-in pipeline, no flags: %s, want %s", got, DefaultCompatibility)
	}
}

func TestTopicCompatibilityInvalid(t *testing.T) {
	_, err := Parse([]byte(`
topics:
  - name: purchases
    compatibility: backwards
`))
	if err == nil || !strings.Contains(err.Error(), "topics[0].compatibility: must be one of BACKWARD") ||
		!strings.Contains(err.Error(), `"backwards"`) {
		t.Fatalf("err = %v, want the compatibility path, the modes and the value", err)
	}
}
