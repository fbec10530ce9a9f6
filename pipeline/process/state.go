package process

import (
	"fmt"
	"log/slog"

	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/stream/pebblestore"
)

// State says where a stage's tasks keep their state stores: on disk under Dir (Pebble,
// with a local checkpoint, so a restart restores only the changelog records after it), or
// in memory when Dir is empty (each assignment restores the whole changelog).
type State struct {
	// Dir is the root of the stores on disk: one directory per task and store,
	// Dir/<stage>/<input topic>/<partition>/<store> (pebblestore.Dir), each locked while
	// open. Empty: in memory.
	Dir string
	// Cache is the block cache every store on disk shares. Nil: each store has one of
	// pebblestore.DefaultCacheBytes.
	Cache *pebblestore.Cache
}

// Durable reports whether the stores are on disk.
func (s State) Durable() bool { return s.Dir != "" }

// openStore opens the store name of task id of stage on st's backend.
func openStore[V any](st State, stage string, id TaskID, name string, c stream.Codec[V]) (*stream.Store[V], error) {
	if !st.Durable() {
		return stream.NewStore[V](name, c), nil
	}
	b, err := pebblestore.Open[V](pebblestore.Dir(st.Dir, stage, id.Topic, id.Partition, name), c, pebblestore.Options{Cache: st.Cache})
	if err != nil {
		return nil, fmt.Errorf("stage %s: state of %s/%d: %w", stage, id.Topic, id.Partition, err)
	}
	return stream.NewStoreOn[V](name, c, b), nil
}

// closeStores closes every store of a task (releasing its directory lock); nil stores
// are skipped.
func closeStores(stores []Changelogged, log *slog.Logger) {
	for _, st := range stores {
		if st == nil {
			continue
		}
		if err := st.Close(); err != nil {
			log.Warn("closing a state store failed", "store", st.Name(), "err", err)
		}
	}
}
