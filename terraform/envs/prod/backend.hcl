# Backend settings of the prod environment, for
#   terraform -chdir=terraform/stack init -reconfigure -backend-config=../envs/prod/backend.hcl
# Fill in the state bucket (created once, versioning and encryption on) and its region.
bucket       = "<state bucket>"
key          = "sluice/prod/terraform.tfstate"
region       = "<region>"
encrypt      = true
use_lockfile = true
