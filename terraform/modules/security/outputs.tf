output "alb_security_group_id" {
  description = "Security group of the public ALB."
  value       = aws_security_group.alb.id
}

output "service_security_group_ids" {
  description = "Security group of each Sluice service, keyed by service name (ingest, process, sink), and of the Kafka Connect workers (connect) with connect_enabled."
  value       = { for k, sg in aws_security_group.service : k => sg.id }
}

output "msk_security_group_id" {
  description = "Security group of the MSK brokers."
  value       = aws_security_group.msk.id
}

output "prometheus_security_group_id" {
  description = "Security group to attach to a Prometheus scraper."
  value       = aws_security_group.prometheus.id
}
