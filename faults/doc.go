// Package faults is Sluice's fault suite on a real three-node Kafka cluster: the pipeline
// (ingest, processor, warehouse sink, in-process through harness) under a steady load of
// REST clients that retry on 503 as docs/API.md says, while brokers are killed, restarted
// one by one, or cut off, and while the network between Sluice and the brokers gets slow,
// narrow or resets (toxiproxy, in-process, one proxy per broker).
//
// After each case it checks that every event that got a 202 is exactly once in .clean and
// in the warehouse, that the window results equal the oracle's, and that no request waited
// longer than the ack deadline; it measures the longest run of 503s, the time until the
// end-to-end p95 is back under 1 s, and the longest request (docs/BENCHMARKS.md, Faults).
//
// The cluster comes from scripts/kafka/kafka-cluster.sh (make test-faults and make
// test-faults-short start it through scripts/kafka/with-cluster.sh). The tests run only
// when SLUICE_TEST_FAULTS is set; -short runs the short suite of make test.
package faults
