# prod: one NAT gateway per zone, six m7g brokers (two per zone), per-topic metrics,
# tasks sized for sustained load.
region      = "eu-central-1"
environment = "prod"
tags        = { Owner = "platform-team" }

vpc_cidr              = "10.50.0.0/16"
availability_zone_ids = ["euc1-az1", "euc1-az2", "euc1-az3"]
single_nat_gateway    = false

certificate_domain      = "ingest.example.com"
alb_deletion_protection = true
# The schema registry and Snowflake have no fixed ranges; HTTPS egress only.
external_https_cidr_blocks = ["0.0.0.0/0"]

msk_broker_instance_type = "kafka.m7g.large"
msk_broker_count         = 6
msk_ebs_volume_size      = 1000
msk_enhanced_monitoring  = "PER_TOPIC_PER_BROKER"

# Set per release: terraform apply -var image_tag=<tag pushed to ECR>.
image_tag        = "v0.1.0"
cpu_architecture = "X86_64"

# The built-in pipeline file gives every topic 3 partitions, and a consumer task beyond
# the partition count only idles: raise the partitions (pipeline file, then
# `sluice topics create`) before raising max_count of process and sink.
services = {
  ingest  = { cpu = 1024, memory = 2048, desired_count = 3, min_count = 3, max_count = 12 }
  process = { cpu = 2048, memory = 4096, desired_count = 2, min_count = 2, max_count = 3 }
  sink    = { cpu = 1024, memory = 2048, desired_count = 2, min_count = 2, max_count = 3 }
}

event_topics = ["page_views", "clicks", "purchases"]
aggregations = ["revenue_by_country_1m", "views_by_url_5m_every_1m", "click_sessions"]
registry_url = "https://schema-registry.example.com"

snowflake = {
  account   = "myorg-prod"
  user      = "SLUICE_SINK"
  role      = "SLUICE_SINK"
  warehouse = "SLUICE_S"
  database  = "SLUICE"
  schema    = "EVENTS"
}

log_retention_days = 90

otel_collector_image = "public.ecr.aws/aws-observability/aws-otel-collector:v0.47.0"

# Where the alarms go (terraform/README.md, "Alarms"): e-mail subscribers of the alarm
# topic and further SNS topics (a pager, AWS Chatbot); thresholds in alarm_thresholds.
alarm_email_addresses = []
alarm_action_arns     = []
