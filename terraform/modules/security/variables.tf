variable "name" {
  description = "Name prefix of the security groups, e.g. \"sluice-dev\"."
  type        = string
}

variable "vpc_id" {
  description = "VPC the security groups belong to."
  type        = string
}

variable "endpoints_security_group_id" {
  description = "Security group of the interface VPC endpoints (ECR, logs, Secrets Manager, STS); the services reach them on 443."
  type        = string
}

variable "s3_prefix_list_id" {
  description = "Prefix list of the S3 gateway endpoint; the services fetch image layers from S3 on 443."
  type        = string
}

variable "alb_ingress_cidr_blocks" {
  description = "Client CIDRs allowed to reach the public ALB listeners (80 redirects to 443)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "external_https_cidr_blocks" {
  description = "Destinations outside the VPC the services may call on 443 through the NAT gateways: the schema registry and Snowflake. Narrow this to their published ranges (or use PrivateLink) where they have them."
  type        = list(string)
}

variable "msk_iam_port" {
  description = "Broker port for TLS + IAM clients inside the VPC (MSK uses 9098)."
  type        = number
  default     = 9098
}

variable "service_port" {
  description = "Container port of every Sluice service: the API (ingest), /healthz, /readyz and /metrics."
  type        = number
  default     = 8080
}

variable "connect_enabled" {
  description = "Add a security group for Kafka Connect workers (MSK, endpoints, HTTPS out, and the REST port between workers)."
  type        = bool
  default     = false
}

variable "connect_rest_port" {
  description = "Port of the Kafka Connect REST API."
  type        = number
  default     = 8083
}
