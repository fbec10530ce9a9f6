output "alb_dns_name" {
  description = "DNS name of the ingest ALB; point the certificate's domain at it (CNAME or Route 53 alias)."
  value       = module.alb.dns_name
}

output "alb_zone_id" {
  description = "Hosted zone of the ALB, for a Route 53 alias record."
  value       = module.alb.zone_id
}

output "bootstrap_brokers_sasl_iam" {
  description = "MSK bootstrap brokers for TLS + IAM clients (port 9098)."
  value       = module.msk.bootstrap_brokers_sasl_iam
}

output "msk_cluster_arn" {
  description = "ARN of the MSK cluster."
  value       = module.msk.cluster_arn
}

output "ecr_repository_url" {
  description = "Push the Sluice image here: docker push <url>:<tag>."
  value       = module.ecr.repository_url
}

output "ecs_cluster_name" {
  description = "Name of the ECS cluster."
  value       = module.ecs.cluster_name
}

output "ecs_service_names" {
  description = "ECS services of ingest, process and sink."
  value       = module.ecs.service_names
}

output "log_group_names" {
  description = "CloudWatch log groups of the services."
  value       = module.ecs.log_group_names
}

output "jwt_secret_arn" {
  description = "Put the HS256 secret here after the first apply."
  value       = module.secrets.jwt_secret_arn
}

output "snowflake_secret_arn" {
  description = "Put the Snowflake key pair JSON here after the first apply."
  value       = module.secrets.snowflake_secret_arn
}

output "nat_public_ips" {
  description = "Egress addresses of the services: allow these in Snowflake's network policy."
  value       = module.network.nat_public_ips
}

output "prometheus_security_group_id" {
  description = "Attach to a Prometheus scraper to read the MSK exporters (11001, 11002) and the services' /metrics."
  value       = module.security.prometheus_security_group_id
}

output "alarm_topic_arn" {
  description = "SNS topic of every alarm: subscribe a pager or chat endpoint here."
  value       = module.alarms.sns_topic_arn
}

output "snowflake_connect_secret_arn" {
  description = "With connect_enabled: put the connector's Snowflake key pair JSON here (modules/secrets/main.tf)."
  value       = module.secrets.snowflake_connect_secret_arn
}

output "connect_service_name" {
  description = "ECS service of the Kafka Connect worker, or null without connect_enabled."
  value       = one(module.connect[*].service_name)
}
