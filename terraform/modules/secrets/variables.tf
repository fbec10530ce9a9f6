variable "name" {
  description = "Name prefix of the secrets, e.g. \"sluice-dev\"; secrets are named <name>/<secret>."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the secrets."
  type        = string
}

variable "recovery_window_in_days" {
  description = "Days a deleted secret can still be restored (0 deletes at once; 7 to 30 otherwise)."
  type        = number
  default     = 30
}

variable "connect_enabled" {
  description = "Create the Kafka Connect Snowflake connector's key secret too."
  type        = bool
  default     = false
}
