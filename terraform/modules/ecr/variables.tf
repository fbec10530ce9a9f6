variable "name" {
  description = "Repository name, e.g. \"sluice\"."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the images at rest."
  type        = string
}

variable "keep_images" {
  description = "How many tagged images to keep; older ones expire (deployed tags must stay within this window)."
  type        = number
  default     = 50
}

variable "force_delete" {
  description = "Let terraform destroy delete the repository while it still holds images (dev only)."
  type        = bool
  default     = false
}
