# Backend settings of the dev environment, for
#   terraform -chdir=terraform/stack init -reconfigure -backend-config=../envs/dev/backend.hcl
# Fill in the state bucket (created once, versioning and encryption on) and its region.
bucket       = "<state bucket>"
key          = "sluice/dev/terraform.tfstate"
region       = "<region>"
encrypt      = true
use_lockfile = true
