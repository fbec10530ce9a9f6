variable "name" {
  description = "Environment name prefix, e.g. \"sluice-dev\"; the cluster has this name."
  type        = string
}

variable "image" {
  description = "Sluice image for all three services, <repository url>:<immutable tag>."
  type        = string
}

variable "cpu_architecture" {
  description = "CPU architecture the image was built for: X86_64 or ARM64 (Graviton, cheaper per vCPU)."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets of the tasks."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security group of each service's tasks, keyed by ingest, process and sink."
  type        = map(string)

  validation {
    condition     = alltrue([for s in ["ingest", "process", "sink"] : contains(keys(var.security_group_ids), s)])
    error_message = "security_group_ids needs the keys ingest, process and sink."
  }
}

variable "services" {
  description = "Size and scaling of each service, keyed by ingest, process and sink. max_count of process and sink should not exceed the partitions of their input topics."
  type = map(object({
    cpu           = number
    memory        = number
    desired_count = number
    min_count     = number
    max_count     = number
  }))

  validation {
    condition     = alltrue([for s in ["ingest", "process", "sink"] : contains(keys(var.services), s)])
    error_message = "services needs the keys ingest, process and sink."
  }
}

variable "msk_cluster_name" {
  description = "Name of the MSK cluster (scopes the IAM policies)."
  type        = string
}

variable "msk_cluster_uuid" {
  description = "UUID of the MSK cluster (scopes the IAM policies)."
  type        = string
}

variable "bootstrap_brokers" {
  description = "TLS + IAM bootstrap brokers of MSK (SLUICE_BROKERS)."
  type        = string
}

variable "event_topics" {
  description = "Raw event topics of the pipeline file (the built-in one has page_views, clicks and purchases); the IAM policies are scoped to these and the names Sluice derives from them."
  type        = list(string)
  default     = ["page_views", "clicks", "purchases"]
}

variable "aggregations" {
  description = "Names of the pipeline file's aggregations (the built-in one has three): the process service scales on the lag of their repartition and aggregate groups. At most four, as a CloudWatch alarm takes at most ten metrics."
  type        = list(string)
  default     = ["revenue_by_country_1m", "views_by_url_5m_every_1m", "click_sessions"]

  validation {
    condition     = length(var.aggregations) <= 4
    error_message = "aggregations: at most 4 (2 + 2 per aggregation lag metrics must fit the 10 metrics of one CloudWatch alarm)."
  }
}

variable "registry_url" {
  description = "Base URL of the Confluent-compatible schema registry (SLUICE_REGISTRY_URL)."
  type        = string
}

variable "log_level" {
  description = "Log level of every service (SLUICE_LOG_LEVEL): debug, info, warn or error."
  type        = string
  default     = "info"
}

variable "jwt_secret_arn" {
  description = "Secrets Manager ARN of the HS256 secret that ingest verifies bearer tokens with."
  type        = string
}

variable "snowflake_secret_arn" {
  description = "Secrets Manager ARN of the Snowflake secret (JSON keys private_key and private_key_passphrase)."
  type        = string
}

variable "secrets_kms_key_arn" {
  description = "KMS key of the secrets."
  type        = string
}

variable "snowflake" {
  description = "Snowflake connection of the sink: account identifier (orgname-accountname), key-pair user, role, warehouse, database and schema."
  type = object({
    account   = string
    user      = string
    role      = string
    warehouse = string
    database  = string
    schema    = string
  })
}

variable "ecr_repository_arn" {
  description = "ECR repository the execution roles may pull from."
  type        = string
}

variable "log_kms_key_arn" {
  description = "KMS key of the log groups."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the service log groups, in days."
  type        = number
  default     = 30
}

variable "target_group_arn" {
  description = "ALB target group of the ingest tasks."
  type        = string
}

variable "alb_resource_label" {
  description = "<alb arn suffix>/<target group arn suffix> for ingest's request-count scaling."
  type        = string
}

variable "lag_high" {
  description = "Consumer lag (records on the most-behind partition) above which process and sink add tasks."
  type        = number
  default     = 10000
}

variable "lag_low" {
  description = "Consumer lag at or below which process and sink remove a task after 15 minutes."
  type        = number
  default     = 100
}

variable "e2e_latency_p95_seconds" {
  description = "End-to-end latency (ingest to output committed) whose p95 the alarms watch, per stage: clean (process service) and sink (ingest to warehouse). Each must be a bucket bound of sluice_end_to_end_latency_seconds (0.001 s doubling: ..., 1.024, 2.048, 4.096, ...)."
  type = object({
    clean = string
    sink  = string
  })
  default = { clean = "1.024", sink = "4.096" }
}

variable "otel_collector_image" {
  description = "Image of the AWS Distro for OpenTelemetry collector sidecar (publishes consumer lag for scaling and the alarms' metrics); mirror it into ECR if tasks must not reach public registries."
  type        = string
}

variable "process_ephemeral_storage_gib" {
  description = "Ephemeral storage of each process task in GiB (21 to 200), where its state stores live (SLUICE_STATE_DIR): about 55 bytes per dedup id on disk, so 1,000 events/s with the 24 h horizon needs about 5 GB per replica holding all partitions (docs/OPERATIONS.md, State on disk)."
  type        = number
  default     = 30

  validation {
    condition     = var.process_ephemeral_storage_gib >= 21 && var.process_ephemeral_storage_gib <= 200
    error_message = "process_ephemeral_storage_gib must be between 21 and 200 (Fargate's limits)."
  }
}
