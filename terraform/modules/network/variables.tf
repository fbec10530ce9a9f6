variable "name" {
  description = "Name prefix for every resource, e.g. \"sluice-dev\"."
  type        = string
}

variable "cidr_block" {
  description = "IPv4 CIDR of the VPC; a /16 leaves room for three /20 private and three /24 public subnets."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.cidr_block, 0)) && tonumber(split("/", var.cidr_block)[1]) <= 18
    error_message = "cidr_block must be a valid IPv4 CIDR of /18 or larger."
  }
}

variable "availability_zone_ids" {
  description = "Zone IDs to span, e.g. [\"euc1-az1\", \"euc1-az2\", \"euc1-az3\"]. IDs name the same physical zone in every account (names do not), and a fixed list never grows when AWS adds a zone. MSK brokers and ECS tasks spread over all of them."
  type        = list(string)

  validation {
    condition     = length(var.availability_zone_ids) >= 2 && length(var.availability_zone_ids) <= 3
    error_message = "availability_zone_ids must list 2 or 3 zone IDs."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for the whole VPC (cheap, dev) instead of one per availability zone (zone-independent egress, prod)."
  type        = bool
  default     = false
}

variable "interface_endpoints" {
  description = "AWS services reached through interface VPC endpoints (private DNS), so image pulls, logs, secrets and STS calls stay off the NAT gateways."
  type        = list(string)
  default     = ["ecr.api", "ecr.dkr", "logs", "secretsmanager", "sts"]
}

variable "flow_log_retention_days" {
  description = "Retention of the VPC flow log group, in days: a year by default, since flow logs are security evidence."
  type        = number
  default     = 365
}

variable "log_kms_key_arn" {
  description = "ARN of the KMS key that encrypts the flow log group (its policy must let CloudWatch Logs use it)."
  type        = string
}
