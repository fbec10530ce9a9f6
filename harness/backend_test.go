package harness

import "testing"

func TestFeatures(t *testing.T) {
	if !(&Kfake{}).Features().Has(BrokerFaults | ManyPartitions) {
		t.Error("kfake: want broker faults and many partitions")
	}
	for _, b := range []Backend{&External{}, &Testcontainers{}} {
		if b.Features().Has(BrokerFaults) || b.Features().Has(ManyPartitions) {
			t.Errorf("%s: features %s, want none", b.Name(), b.Features())
		}
	}
	if got, want := (BrokerFaults | ManyPartitions).String(), "fault injection at the broker and about 1,000 partitions per test"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if !Features(0).Has(0) || Features(BrokerFaults).Has(ManyPartitions) {
		t.Error("Has: wrong on the empty set or a missing feature")
	}
}
