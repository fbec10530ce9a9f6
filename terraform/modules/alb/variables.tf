variable "name" {
  description = "Name prefix of the load balancer, target group and log bucket, e.g. \"sluice-dev\" (32 characters at most with suffixes)."
  type        = string

  validation {
    condition     = length(var.name) <= 24
    error_message = "name must be 24 characters or fewer (ALB and target group names are limited to 32)."
  }
}

variable "vpc_id" {
  description = "VPC of the target group."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets of the load balancer, one per availability zone."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the load balancer."
  type        = string
}

variable "certificate_arn" {
  description = "ARN of the ACM certificate served by the HTTPS listener."
  type        = string
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener (TLS 1.3 and 1.2 with forward secrecy only)."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "target_port" {
  description = "Container port of sluice ingest."
  type        = number
  default     = 8080
}

variable "health_check_path" {
  description = "Target health check path: /readyz answers 200 only when Kafka and the schema registry are reachable."
  type        = string
  default     = "/readyz"
}

variable "idle_timeout" {
  description = "Seconds an idle connection stays open; WebSocket ingest and streaming clients should ping more often than this."
  type        = number
  default     = 300
}

variable "deletion_protection" {
  description = "Refuse to delete the load balancer (turn off before destroying an environment)."
  type        = bool
  default     = true
}

variable "access_log_retention_days" {
  description = "Days ALB access logs are kept in S3."
  type        = number
  default     = 90
}

variable "waf_rate_limit" {
  description = "Requests per 5 minutes from one client IP before the WAF blocks it (Sluice's own per-principal limits apply below this)."
  type        = number
  default     = 20000
}

variable "log_kms_key_arn" {
  description = "KMS key of the WAF log group."
  type        = string
}

variable "waf_log_retention_days" {
  description = "Retention of the WAF log group, in days."
  type        = number
  default     = 30
}
