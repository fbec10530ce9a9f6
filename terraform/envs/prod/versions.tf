terraform {
  # 1.10 brings S3 state locking without DynamoDB (use_lockfile below).
  required_version = ">= 1.10.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }

  # State lives in S3, one key per environment, locked with an S3 lock file. The bucket
  # is created once, outside this configuration (versioning and encryption on), because
  # a configuration cannot hold its own state bucket. Until then `terraform init` keeps
  # state locally. To enable it, uncomment and run `terraform init -migrate-state`, or
  # leave it commented and pass the settings at init time:
  #   terraform init -backend-config="bucket=<state bucket>" -backend-config="region=<region>"
  #
  # backend "s3" {
  #   bucket       = "<state bucket>"
  #   key          = "sluice/prod/terraform.tfstate"
  #   region       = "<region>"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}

provider "aws" {
  region = var.region

  # Every taggable resource gets these, so cost and ownership can be read off any of them.
  default_tags {
    tags = merge(var.tags, {
      Project     = "sluice"
      Environment = var.environment
      ManagedBy   = "terraform"
    })
  }
}
