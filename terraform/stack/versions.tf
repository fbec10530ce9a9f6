terraform {
  # 1.10 brings S3 state locking without DynamoDB (use_lockfile in envs/<env>/backend.hcl).
  required_version = ">= 1.10.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }

  # One configuration, one state per environment: the environment is chosen at init
  # time by its backend settings (envs/<env>/backend.hcl: the S3 bucket, a key per
  # environment, an S3 lock file) and at plan time by its variables
  # (envs/<env>/terraform.tfvars). The state bucket is created once, outside this
  # configuration (versioning and encryption on), because a configuration cannot hold
  # its own state bucket:
  #   terraform -chdir=terraform/stack init -reconfigure -backend-config=../envs/dev/backend.hcl
  #   terraform -chdir=terraform/stack apply -var-file=../envs/dev/terraform.tfvars
  backend "s3" {}
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
