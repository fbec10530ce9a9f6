variable "name" {
  description = "Environment name prefix, e.g. \"sluice-dev\"; the service is <name>-connect and names its worker group and internal topics after it."
  type        = string
}

variable "image" {
  description = "Kafka Connect worker image: Kafka 4.1 at /opt/kafka (as the apache/kafka image has it) with aws-msk-iam-auth in /opt/kafka/libs, the Snowflake connector jar (com.snowflake:snowflake-kafka-connector 2.5.0) in a directory under /opt/kafka-connect/plugins, and sh, hostname and curl."
  type        = string
}

variable "cpu_architecture" {
  description = "CPU architecture of the image: X86_64 or ARM64."
  type        = string
  default     = "X86_64"
}

variable "snowflake" {
  description = "Snowflake account identifier, key-pair user, role, database and schema the connector writes to (SNOWFLAKE_* of deploy/connect/snowflake-sink.json)."
  type = object({
    account  = string
    user     = string
    role     = string
    database = string
    schema   = string
  })
}

variable "registry_credentials_secret_arn" {
  description = "Secrets Manager secret with JSON key user_info (\"<user>:<password>\") for the schema registry's basic auth, or null for a registry without auth."
  type        = string
  default     = null
}

variable "cluster_arn" {
  description = "ARN of the ECS cluster."
  type        = string
}

variable "cpu" {
  description = "Task CPU units (1024 = 1 vCPU)."
  type        = number
  default     = 1024
}

variable "memory" {
  description = "Task memory, in MiB (the worker's JVM heap is 75% of it)."
  type        = number
  default     = 4096
}

variable "desired_count" {
  description = "Connect workers; the connector's tasks spread over them (tasks.max in its config). No autoscaling: a worker joining or leaving rebalances every connector."
  type        = number
  default     = 1
}

variable "subnet_ids" {
  description = "Private subnets of the tasks."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the Connect tasks (MSK, Snowflake over HTTPS, and workers to each other on the REST port)."
  type        = string
}

variable "bootstrap_brokers" {
  description = "TLS + IAM bootstrap brokers of MSK."
  type        = string
}

variable "msk_cluster_name" {
  description = "Name of the MSK cluster (scopes the IAM policy)."
  type        = string
}

variable "msk_cluster_uuid" {
  description = "UUID of the MSK cluster (scopes the IAM policy)."
  type        = string
}

variable "event_topics" {
  description = "Raw event topics of the pipeline file: the connector reads their clean topics, and the agg.* topics."
  type        = list(string)
}

variable "connector_name" {
  description = "Name the connector is created under (deploy/connect/); a sink connector's consumer group is connect-<name>."
  type        = string
  default     = "sluice-snowflake-sink"
}

variable "connector_dlq_topic" {
  description = "The connector's errors.deadletterqueue.topic.name, or null when its config sets none; the worker may write it."
  type        = string
  default     = null
}

variable "registry_url" {
  description = "Base URL of the schema registry the Avro converter reads schemas from."
  type        = string
}

variable "snowflake_secret_arn" {
  description = "Secrets Manager secret of the connector's Snowflake key pair: JSON {private_key, private_key_passphrase}."
  type        = string
}

variable "secrets_kms_key_arn" {
  description = "KMS key of the secret (decrypted through Secrets Manager only)."
  type        = string
}

variable "log_kms_key_arn" {
  description = "KMS key of the log group."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the worker's log group, in days."
  type        = number
}

variable "ecr_repository_arn" {
  description = "ECR repository the image is pulled from, or null for an image the tasks reach through NAT."
  type        = string
  default     = null
}
