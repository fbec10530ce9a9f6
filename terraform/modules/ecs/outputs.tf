output "cluster_name" {
  description = "Name of the ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "cluster_arn" {
  description = "ARN of the ECS cluster."
  value       = aws_ecs_cluster.this.arn
}

output "service_names" {
  description = "ECS service name of ingest, process and sink."
  value = {
    ingest  = module.ingest.service_name
    process = module.process.service_name
    sink    = module.sink.service_name
  }
}

output "task_role_arns" {
  description = "Task role of each service (one per service, never shared)."
  value = {
    ingest  = module.ingest.task_role_arn
    process = module.process.task_role_arn
    sink    = module.sink.task_role_arn
  }
}

output "log_group_names" {
  description = "CloudWatch log group of each service."
  value = {
    ingest  = module.ingest.log_group_name
    process = module.process.log_group_name
    sink    = module.sink.log_group_name
  }
}

output "metrics_namespace" {
  description = "CloudWatch namespace of the metrics the services' ADOT sidecars publish."
  value       = local.metrics_namespace
}

output "service_dimensions" {
  description = "ServiceName dimension of each service's published metrics (its task family)."
  value = {
    ingest  = "${var.name}-ingest"
    process = "${var.name}-process"
    sink    = "${var.name}-sink"
  }
}
