output "service_name" {
  description = "Name of the Connect ECS service."
  value       = aws_ecs_service.connect.name
}

output "task_role_arn" {
  description = "ARN of the Connect task role (MSK access of the worker and its connector)."
  value       = aws_iam_role.task.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the Connect worker."
  value       = aws_cloudwatch_log_group.connect.name
}

output "rest_port" {
  description = "Port of the Connect REST API (reachable inside the task's security group only): PUT /connectors/<name>/config to submit deploy/connect/'s config."
  value       = local.rest_port
}
