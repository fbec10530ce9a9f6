output "key_arn" {
  description = "ARN of the platform key (logs, ECR, Secrets Manager)."
  value       = aws_kms_key.this.arn
}

output "alias_name" {
  description = "Alias of the platform key."
  value       = aws_kms_alias.this.name
}
