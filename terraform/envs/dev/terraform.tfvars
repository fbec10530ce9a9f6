# dev: the smallest sizing that still has three zones and three brokers (replication 3,
# min.insync.replicas 2 need them), one NAT gateway, short log retention.
region      = "eu-central-1"
environment = "dev"
tags        = { Owner = "platform-team" }

vpc_cidr              = "10.40.0.0/16"
availability_zone_ids = ["euc1-az1", "euc1-az2", "euc1-az3"]
single_nat_gateway    = true

certificate_domain      = "ingest.dev.example.com"
alb_deletion_protection = false
# The schema registry and Snowflake have no fixed ranges; HTTPS egress only.
external_https_cidr_blocks = ["0.0.0.0/0"]

# kafka.t3.small accepts only a few new IAM-authenticated connections per broker per
# second: fine for three services, not for load tests.
msk_broker_instance_type = "kafka.t3.small"
msk_broker_count         = 3
msk_ebs_volume_size      = 50
msk_enhanced_monitoring  = "DEFAULT"

# Set per release: terraform apply -var image_tag=<tag pushed to ECR>.
image_tag        = "v0.1.0"
cpu_architecture = "X86_64"

services = {
  ingest  = { cpu = 512, memory = 1024, desired_count = 1, min_count = 1, max_count = 3 }
  process = { cpu = 512, memory = 1024, desired_count = 1, min_count = 1, max_count = 3 }
  sink    = { cpu = 512, memory = 1024, desired_count = 1, min_count = 1, max_count = 2 }
}

event_topics = ["page_views", "clicks", "purchases"]
aggregations = ["revenue_by_country_1m", "views_by_url_5m_every_1m", "click_sessions"]
registry_url = "https://schema-registry.dev.example.com"

snowflake = {
  account   = "myorg-dev"
  user      = "SLUICE_SINK"
  role      = "SLUICE_SINK"
  warehouse = "SLUICE_XS"
  database  = "SLUICE_DEV"
  schema    = "EVENTS"
}

log_retention_days = 14

otel_collector_image = "public.ecr.aws/aws-observability/aws-otel-collector:v0.47.0"

# Where the alarms go (terraform/README.md, "Alarms"): e-mail subscribers of the alarm
# topic and further SNS topics (a pager, AWS Chatbot); thresholds in alarm_thresholds.
alarm_email_addresses = []
alarm_action_arns     = []
