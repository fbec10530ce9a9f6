output "jwt_secret_arn" {
  description = "ARN of the HS256 JWT secret (a plain string)."
  value       = aws_secretsmanager_secret.jwt.arn
}

output "snowflake_secret_arn" {
  description = "ARN of the Snowflake secret (JSON with private_key and private_key_passphrase)."
  value       = aws_secretsmanager_secret.snowflake.arn
}

output "snowflake_connect_secret_arn" {
  description = "ARN of the Kafka Connect connector's Snowflake secret (JSON with private_key and private_key_passphrase), or null without connect_enabled."
  value       = one(aws_secretsmanager_secret.snowflake_connect[*].arn)
}
