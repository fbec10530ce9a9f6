variable "region" {
  description = "AWS region of the environment."
  type        = string
}

variable "environment" {
  description = "Environment name (dev, prod); resources are named sluice-<environment>."
  type        = string
}

variable "tags" {
  description = "Extra tags for every resource (e.g. Owner, CostCenter)."
  type        = map(string)
  default     = {}
}

variable "vpc_cidr" {
  description = "IPv4 CIDR of the VPC."
  type        = string
}

variable "availability_zone_ids" {
  description = "Zone IDs (not names) of the three availability zones, e.g. euc1-az1."
  type        = list(string)
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones (true: cheaper) or one per zone (false: zone-independent egress)."
  type        = bool
}

variable "certificate_domain" {
  description = "Domain of the issued ACM certificate the ALB serves, e.g. ingest.dev.example.com (looked up, so no ARN with an account id is written down)."
  type        = string
}

variable "external_https_cidr_blocks" {
  description = "Destinations the services may reach on 443 through NAT: the schema registry, Snowflake and the collector image's registry. Narrow where their ranges are known."
  type        = list(string)
}

variable "alb_deletion_protection" {
  description = "Protect the ALB from deletion (and keep its log bucket when destroying)."
  type        = bool
}

variable "msk_broker_instance_type" {
  description = "MSK broker instance type."
  type        = string
}

variable "msk_broker_count" {
  description = "Number of MSK brokers (a multiple of 3, one per zone)."
  type        = number
}

variable "msk_ebs_volume_size" {
  description = "EBS storage per broker, in GiB."
  type        = number
}

variable "msk_enhanced_monitoring" {
  description = "MSK CloudWatch metric level."
  type        = string
}

variable "image_tag" {
  description = "Immutable tag of the Sluice image in ECR to deploy (set per release, e.g. -var image_tag=v1.4.2)."
  type        = string
}

variable "cpu_architecture" {
  description = "CPU architecture of the image: X86_64 or ARM64."
  type        = string
}

variable "services" {
  description = "Task size and scaling bounds of ingest, process and sink."
  type = map(object({
    cpu           = number
    memory        = number
    desired_count = number
    min_count     = number
    max_count     = number
  }))
}

variable "event_topics" {
  description = "Raw event topics of the pipeline file (IAM scoping)."
  type        = list(string)
}

variable "aggregations" {
  description = "Aggregation names of the pipeline file (scaling of the process service on their groups' lag)."
  type        = list(string)
}

variable "registry_url" {
  description = "Base URL of the Confluent-compatible schema registry."
  type        = string
}

variable "snowflake" {
  description = "Snowflake account identifier, key-pair user, role, warehouse, database and schema of the sink."
  type = object({
    account   = string
    user      = string
    role      = string
    warehouse = string
    database  = string
    schema    = string
  })
}

variable "log_retention_days" {
  description = "Retention of the service, broker and WAF log groups, in days (VPC flow logs keep a year)."
  type        = number
}

variable "otel_collector_image" {
  description = "Image of the ADOT collector sidecar that publishes consumer lag for autoscaling."
  type        = string
}

variable "alarm_email_addresses" {
  description = "E-mail addresses that receive every alarm and recovery (each confirms its subscription once)."
  type        = list(string)
  default     = []
}

variable "alarm_action_arns" {
  description = "Further ARNs every alarm notifies, e.g. an existing SNS topic of a pager or of AWS Chatbot."
  type        = list(string)
  default     = []
}

variable "alarm_thresholds" {
  description = "Thresholds of the alarms (terraform/README.md, \"Alarms\"). e2e_latency_p95_seconds: per stage (clean, sink), a bucket bound of sluice_end_to_end_latency_seconds (0.001 s doubling: ..., 1.024, 2.048, 4.096, ...)."
  type = object({
    alb_5xx_percent                = optional(number, 1)
    alb_unhealthy_hosts            = optional(number, 0)
    msk_disk_used_percent          = optional(number, 80)
    dead_letters_new               = optional(number, 0)
    dead_letter_oldest_age_seconds = optional(number, 86400)
    e2e_latency_p95_seconds        = optional(object({ clean = string, sink = string }), { clean = "1.024", sink = "4.096" })
    sink_freshness_seconds         = optional(number, 900)
    task_restarts                  = optional(number, 0)
  })
  default = {}
}

variable "connect_enabled" {
  description = "Run a Kafka Connect worker with the Snowflake sink connector as well (modules/connect); `sluice sink` keeps running unless its count is set to 0."
  type        = bool
  default     = false
}

variable "connect_image" {
  description = "Kafka Connect worker image (see modules/connect/variables.tf: image); required with connect_enabled."
  type        = string
  default     = null

  validation {
    condition     = !var.connect_enabled || var.connect_image != null
    error_message = "connect_image is required when connect_enabled is true."
  }
}

variable "connect_desired_count" {
  description = "Kafka Connect workers."
  type        = number
  default     = 1
}

variable "connect_connector_name" {
  description = "Name of the Snowflake connector in deploy/connect/ (its consumer group is connect-<name>)."
  type        = string
  default     = "sluice-snowflake-sink"
}

variable "connect_dlq_topic" {
  description = "The connector's errors.deadletterqueue.topic.name, or null when it sets none."
  type        = string
  default     = null
}

variable "connect_cpu_architecture" {
  description = "CPU architecture of connect_image: X86_64 or ARM64."
  type        = string
  default     = "X86_64"
}

variable "connect_snowflake_user" {
  description = "Snowflake key-pair user of the connector, or null for the sink's user (snowflake.user); its key goes in the snowflake-connect secret."
  type        = string
  default     = null
}
