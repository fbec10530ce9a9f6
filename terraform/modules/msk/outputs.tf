output "cluster_arn" {
  description = "ARN of the MSK cluster."
  value       = aws_msk_cluster.this.arn
}

output "cluster_name" {
  description = "Name of the MSK cluster (part of topic, group and transactional-id ARNs)."
  value       = aws_msk_cluster.this.cluster_name
}

output "cluster_uuid" {
  description = "UUID of the MSK cluster (part of topic, group and transactional-id ARNs)."
  value       = aws_msk_cluster.this.cluster_uuid
}

output "bootstrap_brokers_sasl_iam" {
  description = "Comma-separated TLS + IAM bootstrap brokers (port 9098): SLUICE_BROKERS."
  value       = aws_msk_cluster.this.bootstrap_brokers_sasl_iam
}

output "kms_key_arn" {
  description = "KMS key that encrypts the brokers' storage."
  value       = aws_kms_key.msk.arn
}

output "broker_log_group_name" {
  description = "CloudWatch log group of the broker logs."
  value       = aws_cloudwatch_log_group.broker.name
}
