package kafka

// Pending is the number of calls waiting for a transaction (tests).
func (p *TxnProducer) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending)
}
