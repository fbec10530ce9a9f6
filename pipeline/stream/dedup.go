package stream

import "time"

// Dedup remembers event ids for a horizon of event time, per task. Time is the task's
// watermark: the largest event time it has seen. That makes expiry a function of the
// input alone, so a replay after a crash drops exactly the same duplicates.
type Dedup struct {
	store     *Store[int64] // event id -> expiry (unix millis of event time)
	horizon   int64
	watermark int64
	nextSweep int64
}

// NewDedup returns a Dedup over store, remembering ids for horizon.
func NewDedup(store *Store[int64], horizon time.Duration) *Dedup {
	return &Dedup{store: store, horizon: horizon.Milliseconds()}
}

// Store returns the backing store (its changes go to the changelog).
func (d *Dedup) Store() *Store[int64] { return d.store }

// Watermark is the largest event time seen (unix millis).
func (d *Dedup) Watermark() int64 { return d.watermark }

// Seen reports whether id was already seen within the horizon, and remembers it with event
// time t (unix millis). Expired ids are swept at most once per eighth of the horizon.
func (d *Dedup) Seen(id string, t int64) bool {
	if t > d.watermark {
		d.watermark = t
	}
	if d.watermark >= d.nextSweep {
		d.sweep()
	}
	exp := t + d.horizon
	if old, ok := d.store.Get(id); ok && old >= d.watermark {
		if exp > old {
			d.store.Put(id, exp)
		}
		return true
	}
	d.store.Put(id, exp)
	return false
}

func (d *Dedup) sweep() {
	wm := d.watermark
	d.store.Range(func(k string, exp int64) bool {
		if exp < wm {
			d.store.Delete(k)
		}
		return true
	})
	step := d.horizon / 8
	if step < 1 {
		step = 1
	}
	d.nextSweep = wm + step
}

// Contains reports what Seen(id, t) would, without remembering anything: a handler
// checks it before work that may fail and calls Seen once the event is done.
func (d *Dedup) Contains(id string, t int64) bool {
	wm := max(d.watermark, t)
	old, ok := d.store.Get(id)
	return ok && old >= wm
}

// Add remembers id with event time t (unix millis) right after Contains(id, t) reported
// it absent: what Seen would do then, without looking id up a second time.
func (d *Dedup) Add(id string, t int64) {
	if t > d.watermark {
		d.watermark = t
	}
	if d.watermark >= d.nextSweep {
		d.sweep()
	}
	d.store.Put(id, t+d.horizon)
}
