variable "name" {
  description = "Environment name prefix, e.g. \"sluice-dev\"; alarms are named <name>-<what>."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the alarm topic and of the task-stop log group (its key policy lets CloudWatch and CloudWatch Logs use it)."
  type        = string
}

variable "alarm_email_addresses" {
  description = "E-mail addresses subscribed to the alarm topic (each confirms once by mail)."
  type        = list(string)
  default     = []
}

variable "alarm_action_arns" {
  description = "Further ARNs notified on alarm and on recovery, besides the module's own SNS topic: e.g. an existing SNS topic wired to a pager or to AWS Chatbot."
  type        = list(string)
  default     = []
}

variable "thresholds" {
  description = "Alarm thresholds; README.md says what each alarm means."
  type = object({
    alb_5xx_percent                = number
    alb_unhealthy_hosts            = number
    msk_disk_used_percent          = number
    dead_letters_new               = number
    dead_letter_oldest_age_seconds = number
    e2e_latency_p95_seconds        = map(string)
    sink_freshness_seconds         = number
    task_restarts                  = number
  })
}

variable "alb_arn_suffix" {
  description = "ARN suffix of the ingest ALB (the LoadBalancer dimension)."
  type        = string
}

variable "target_group_arn_suffix" {
  description = "ARN suffix of the ingest target group (the TargetGroup dimension)."
  type        = string
}

variable "msk_cluster_name" {
  description = "Name of the MSK cluster (the \"Cluster Name\" dimension)."
  type        = string
}

variable "msk_broker_count" {
  description = "Number of MSK brokers; broker ids run from 1 to this."
  type        = number
}

variable "ecs_cluster_arn" {
  description = "ARN of the ECS cluster whose task stops count as restarts."
  type        = string
}

variable "ecs_service_names" {
  description = "ECS service name of ingest, process and sink."
  type        = map(string)
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the metrics the services' ADOT sidecars publish."
  type        = string
}

variable "service_dimensions" {
  description = "ServiceName dimension of each service's published metrics, keyed by ingest, process and sink."
  type        = map(string)
}

variable "dead_letter_topics" {
  description = "Every dead-letter topic of the pipeline: <topic>.dlq per raw topic, _sluice.retry.dlq and _sluice.sink.dlq."
  type        = list(string)
}

variable "task_stop_log_retention_days" {
  description = "Retention of the log group that records every unexpected task stop, in days."
  type        = number
  default     = 90
}
