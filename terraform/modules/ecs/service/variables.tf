variable "name" {
  description = "Service name: ingest, process or sink. Also the container name and the subcommand's role in names."
  type        = string
}

variable "prefix" {
  description = "Environment name prefix, e.g. \"sluice-dev\"; the task family is <prefix>-<name>."
  type        = string
}

variable "cluster_arn" {
  description = "ARN of the ECS cluster."
  type        = string
}

variable "cluster_name" {
  description = "Name of the ECS cluster (part of the autoscaling resource id)."
  type        = string
}

variable "image" {
  description = "Container image of Sluice, <repository>:<immutable tag>."
  type        = string
}

variable "command" {
  description = "Arguments to /sluice, e.g. [\"process\"]."
  type        = list(string)
}

variable "cpu" {
  description = "Task CPU units (1024 = 1 vCPU)."
  type        = number
}

variable "memory" {
  description = "Task memory, in MiB."
  type        = number
}

variable "cpu_architecture" {
  description = "CPU architecture of the image: X86_64 or ARM64."
  type        = string
}

variable "desired_count" {
  description = "Tasks at creation; autoscaling owns the count afterwards."
  type        = number
}

variable "min_count" {
  description = "Fewest tasks autoscaling keeps."
  type        = number
}

variable "max_count" {
  description = "Most tasks autoscaling starts; for consumers, more tasks than input partitions only idle."
  type        = number
}

variable "subnet_ids" {
  description = "Private subnets of the tasks."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of this service's tasks."
  type        = string
}

variable "environment" {
  description = "Plain environment variables of the container (SLUICE_* settings)."
  type        = map(string)
}

variable "secrets" {
  description = "Environment variables filled from Secrets Manager: name => secret ARN, optionally with :json-key:: appended."
  type        = map(string)
  default     = {}
}

variable "secret_arns" {
  description = "ARNs of the secrets behind var.secrets; the execution role may read these and nothing else."
  type        = list(string)
  default     = []
}

variable "secrets_kms_key_arn" {
  description = "KMS key of the secrets (decrypted through Secrets Manager only)."
  type        = string
}

variable "task_policy_json" {
  description = "IAM policy of the task role: what this service may do on MSK."
  type        = string
}

variable "ecr_repository_arn" {
  description = "ECR repository the execution role may pull the image from."
  type        = string
}

variable "log_kms_key_arn" {
  description = "KMS key of the service's log groups."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the service's log groups, in days."
  type        = number
}

variable "port" {
  description = "Container port: API, /healthz, /readyz and /metrics."
  type        = number
  default     = 8080
}

variable "target_group_arn" {
  description = "ALB target group to register the tasks in (ingest only); null for none."
  type        = string
  default     = null
}

variable "alb_resource_label" {
  description = "<load balancer arn suffix>/<target group arn suffix>, for request-count scaling; null to scale on CPU (and lag) only."
  type        = string
  default     = null
}

variable "requests_per_target" {
  description = "Target of ALBRequestCountPerTarget (requests per task per minute) when alb_resource_label is set."
  type        = number
  default     = 6000
}

variable "cpu_target" {
  description = "Average CPU utilisation (percent) that CPU target tracking keeps the service at."
  type        = number
  default     = 60
}

variable "lag_scaling" {
  description = <<-EOT
    Scale on consumer lag, or null. groups: the consumer groups whose lag counts (the
    largest partition lag of any of them); high: lag that adds tasks; low: lag under which
    a task is removed after 15 quiet minutes.
  EOT
  type = object({
    groups = list(string)
    high   = number
    low    = number
  })
  default = null

  validation {
    condition     = var.lag_scaling == null || try(length(var.lag_scaling.groups) >= 1 && length(var.lag_scaling.groups) <= 10, false)
    error_message = "lag_scaling.groups: 1 to 10 groups (a CloudWatch metric-math alarm takes at most 10 metrics)."
  }
}

variable "metrics_namespace" {
  description = "CloudWatch namespace the ADOT sidecar publishes the service's metrics to (sluice_consumer_lag with lag_scaling, and emf_metrics)."
  type        = string
}

variable "emf_metrics" {
  description = "Prometheus metrics of the service, besides sluice_consumer_lag, that the ADOT sidecar publishes to CloudWatch (for the alarms): metric name => dimension sets, each a list of labels (ServiceName is the task family)."
  type        = map(list(list(string)))
  default     = {}
}

variable "e2e_latency_bucket" {
  description = <<-EOT
    An upper bound ("le") of the buckets of sluice_end_to_end_latency_seconds, or null.
    When set, the ADOT sidecar publishes that bucket's count as sluice_e2e_within_slo and
    the histogram's count as sluice_e2e_records (dimensions ServiceName and stage): the
    share of records slower than the bound is above 5% exactly when the p95 is. The
    buckets are 0.001 s doubling up to 32.768 s (pipeline/process/metrics.go).
  EOT
  type        = string
  default     = null

  validation {
    condition = var.e2e_latency_bucket == null || contains(["0.001", "0.002", "0.004", "0.008", "0.016", "0.032", "0.064", "0.128", "0.256",
    "0.512", "1.024", "2.048", "4.096", "8.192", "16.384", "32.768"], coalesce(var.e2e_latency_bucket, "-"))
    error_message = "e2e_latency_bucket must be an upper bound of the sluice_end_to_end_latency_seconds buckets: 0.001 doubling up to 32.768 (e.g. \"1.024\")."
  }
}

variable "otel_collector_image" {
  description = "Image of the AWS Distro for OpenTelemetry collector sidecar that publishes metrics to CloudWatch (used only with lag_scaling, emf_metrics or e2e_latency_bucket)."
  type        = string
}

variable "stop_timeout" {
  description = "Seconds between SIGTERM and SIGKILL: time to drain in-flight requests and commit (Fargate allows 120 at most)."
  type        = number
  default     = 60
}

variable "ephemeral_storage_gib" {
  description = "Fargate ephemeral storage of the task in GiB (21 to 200); 0 keeps Fargate's default of 20 GiB. The process service keeps its state stores there (state_dir)."
  type        = number
  default     = 0

  validation {
    condition     = var.ephemeral_storage_gib == 0 || (var.ephemeral_storage_gib >= 21 && var.ephemeral_storage_gib <= 200)
    error_message = "ephemeral_storage_gib must be 0 (Fargate's default) or between 21 and 200."
  }
}

variable "state_dir" {
  description = "Writable directory on the task's ephemeral storage for the state stores (the container's root file system is read-only); empty: none."
  type        = string
  default     = ""
}
