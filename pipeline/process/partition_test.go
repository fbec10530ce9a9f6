package process

import (
	"hash/fnv"
	"testing"
)

// TestPartitionForMatchesHashFNV pins the repartitioning of group keys: it must stay
// hash/fnv's FNV-1a, or a restarted stage would send a group to another partition than
// its open windows.
func TestPartitionForMatchesHashFNV(t *testing.T) {
	tests := []struct {
		name string
		key  string
		n    int32
	}{
		{name: "empty", key: "", n: 3},
		{name: "country", key: "DE", n: 3},
		{name: "url", key: "https://shop.example/p/12345?ref=home", n: 7},
		{name: "escaped group", key: `a\|b|c`, n: 12},
		{name: "non-ASCII", key: "Z\u00fcrich-\u6771\u4eac", n: 5},
		{name: "one partition", key: "x", n: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := fnv.New32a()
			_, _ = h.Write([]byte(tc.key))
			want := int32(h.Sum32() % uint32(tc.n))
			if got := partitionFor(tc.key, tc.n); got != want {
				t.Fatalf("partitionFor(%q, %d) = %d, want %d", tc.key, tc.n, got, want)
			}
		})
	}
}
