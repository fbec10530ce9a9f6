output "sns_topic_arn" {
  description = "SNS topic every alarm notifies; subscribe further endpoints here."
  value       = aws_sns_topic.alarms.arn
}

output "task_stop_log_group_name" {
  description = "Log group that records every unexpected ECS task stop, with its stop code and reason."
  value       = aws_cloudwatch_log_group.task_stops.name
}
