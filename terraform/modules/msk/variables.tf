variable "name" {
  description = "Cluster name, e.g. \"sluice-dev\"; also the prefix of its configuration, key alias and log group."
  type        = string
}

variable "kafka_version" {
  description = "MSK Kafka version. Kafka 4 runs in KRaft mode only, which MSK spells with a .kraft suffix; 4.1.x.kraft is the newest for standard (non-Express) brokers."
  type        = string
  default     = "4.1.x.kraft"

  validation {
    condition     = can(regex("^4\\.[0-9]+\\.x\\.kraft$", var.kafka_version))
    error_message = "kafka_version must be a Kafka 4.x KRaft version as MSK names it, e.g. \"4.1.x.kraft\"."
  }
}

variable "broker_instance_type" {
  description = "Broker instance type, e.g. kafka.t3.small (dev) or kafka.m7g.large (prod)."
  type        = string
}

variable "broker_count" {
  description = "Number of brokers; a multiple of the number of client subnets (one per zone)."
  type        = number
  default     = 3
}

variable "ebs_volume_size" {
  description = "EBS storage per broker, in GiB."
  type        = number
  default     = 100
}

variable "client_subnet_ids" {
  description = "Private subnets for the brokers, one per availability zone."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the brokers."
  type        = list(string)
}

variable "enhanced_monitoring" {
  description = "CloudWatch metric level: DEFAULT, PER_BROKER, PER_TOPIC_PER_BROKER or PER_TOPIC_PER_PARTITION."
  type        = string
  default     = "PER_BROKER"

  validation {
    condition     = contains(["DEFAULT", "PER_BROKER", "PER_TOPIC_PER_BROKER", "PER_TOPIC_PER_PARTITION"], var.enhanced_monitoring)
    error_message = "enhanced_monitoring must be DEFAULT, PER_BROKER, PER_TOPIC_PER_BROKER or PER_TOPIC_PER_PARTITION."
  }
}

variable "log_kms_key_arn" {
  description = "KMS key of the broker log group."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the broker log group, in days."
  type        = number
  default     = 30
}

variable "log_retention_hours" {
  description = "Default topic retention (log.retention.hours); topics may override it."
  type        = number
  default     = 168
}
