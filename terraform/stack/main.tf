# Sluice on AWS: MSK (Kafka 4, KRaft, TLS + IAM) and three ECS Fargate services behind
# an HTTPS ALB, in a three-zone VPC. The environments differ only in their tfvars.

locals {
  name = "sluice-${var.environment}"
}

data "aws_acm_certificate" "ingest" {
  domain      = var.certificate_domain
  statuses    = ["ISSUED"]
  most_recent = true
}

module "kms" {
  source = "../modules/kms"

  name = local.name
}

module "network" {
  source = "../modules/network"

  name                  = local.name
  cidr_block            = var.vpc_cidr
  availability_zone_ids = var.availability_zone_ids
  single_nat_gateway    = var.single_nat_gateway
  log_kms_key_arn       = module.kms.key_arn
}

module "security" {
  source = "../modules/security"

  name                        = local.name
  vpc_id                      = module.network.vpc_id
  endpoints_security_group_id = module.network.endpoints_security_group_id
  s3_prefix_list_id           = module.network.s3_prefix_list_id
  external_https_cidr_blocks  = var.external_https_cidr_blocks
  connect_enabled             = var.connect_enabled
}

module "ecr" {
  source = "../modules/ecr"

  name         = local.name
  kms_key_arn  = module.kms.key_arn
  force_delete = !var.alb_deletion_protection
}

module "secrets" {
  source = "../modules/secrets"

  name            = local.name
  kms_key_arn     = module.kms.key_arn
  connect_enabled = var.connect_enabled
}

module "msk" {
  source = "../modules/msk"

  name                 = local.name
  broker_instance_type = var.msk_broker_instance_type
  broker_count         = var.msk_broker_count
  ebs_volume_size      = var.msk_ebs_volume_size
  enhanced_monitoring  = var.msk_enhanced_monitoring
  client_subnet_ids    = module.network.private_subnet_ids
  security_group_ids   = [module.security.msk_security_group_id]
  log_kms_key_arn      = module.kms.key_arn
  log_retention_days   = var.log_retention_days
}

module "alb" {
  source = "../modules/alb"

  name                   = local.name
  vpc_id                 = module.network.vpc_id
  public_subnet_ids      = module.network.public_subnet_ids
  security_group_id      = module.security.alb_security_group_id
  certificate_arn        = data.aws_acm_certificate.ingest.arn
  deletion_protection    = var.alb_deletion_protection
  log_kms_key_arn        = module.kms.key_arn
  waf_log_retention_days = var.log_retention_days
}

module "ecs" {
  source = "../modules/ecs"

  name                 = local.name
  image                = "${module.ecr.repository_url}:${var.image_tag}"
  cpu_architecture     = var.cpu_architecture
  private_subnet_ids   = module.network.private_subnet_ids
  security_group_ids   = module.security.service_security_group_ids
  services             = var.services
  msk_cluster_name     = module.msk.cluster_name
  msk_cluster_uuid     = module.msk.cluster_uuid
  bootstrap_brokers    = module.msk.bootstrap_brokers_sasl_iam
  event_topics         = var.event_topics
  aggregations         = var.aggregations
  registry_url         = var.registry_url
  jwt_secret_arn       = module.secrets.jwt_secret_arn
  snowflake_secret_arn = module.secrets.snowflake_secret_arn
  secrets_kms_key_arn  = module.kms.key_arn
  snowflake            = var.snowflake
  ecr_repository_arn   = module.ecr.repository_arn
  log_kms_key_arn      = module.kms.key_arn
  log_retention_days   = var.log_retention_days
  target_group_arn     = module.alb.target_group_arn
  alb_resource_label   = "${module.alb.arn_suffix}/${module.alb.target_group_arn_suffix}"
  otel_collector_image = var.otel_collector_image
  # The collectors publish the latency counts at the bounds the alarms watch.
  e2e_latency_p95_seconds = var.alarm_thresholds.e2e_latency_p95_seconds
}

module "alarms" {
  source = "../modules/alarms"

  name                    = local.name
  kms_key_arn             = module.kms.key_arn
  alarm_email_addresses   = var.alarm_email_addresses
  alarm_action_arns       = var.alarm_action_arns
  thresholds              = var.alarm_thresholds
  alb_arn_suffix          = module.alb.arn_suffix
  target_group_arn_suffix = module.alb.target_group_arn_suffix
  msk_cluster_name        = module.msk.cluster_name
  msk_broker_count        = var.msk_broker_count
  ecs_cluster_arn         = module.ecs.cluster_arn
  ecs_service_names       = module.ecs.service_names
  metrics_namespace       = module.ecs.metrics_namespace
  service_dimensions      = module.ecs.service_dimensions
  # Every dead-letter topic of the pipeline (pipeline/config/types.go, retry.go).
  dead_letter_topics = concat([for t in var.event_topics : "${t}.dlq"], ["_sluice.retry.dlq", "_sluice.sink.dlq"])
}

# The Kafka Connect alternative to `sluice sink` (docs/OPERATIONS.md): off unless
# connect_enabled. Its connector config is deploy/connect/.
module "connect" {
  source = "../modules/connect"
  count  = var.connect_enabled ? 1 : 0

  name                = local.name
  image               = var.connect_image
  cluster_arn         = module.ecs.cluster_arn
  desired_count       = var.connect_desired_count
  subnet_ids          = module.network.private_subnet_ids
  security_group_id   = module.security.service_security_group_ids["connect"]
  bootstrap_brokers   = module.msk.bootstrap_brokers_sasl_iam
  msk_cluster_name    = module.msk.cluster_name
  msk_cluster_uuid    = module.msk.cluster_uuid
  event_topics        = var.event_topics
  connector_name      = var.connect_connector_name
  connector_dlq_topic = var.connect_dlq_topic
  registry_url        = var.registry_url
  cpu_architecture    = var.connect_cpu_architecture
  # The connector writes the tables `sluice sink` writes (docs/CONNECT.md), as its own
  # key-pair user when connect_snowflake_user is set.
  snowflake = {
    account  = var.snowflake.account
    user     = coalesce(var.connect_snowflake_user, var.snowflake.user)
    role     = var.snowflake.role
    database = var.snowflake.database
    schema   = var.snowflake.schema
  }
  snowflake_secret_arn = module.secrets.snowflake_connect_secret_arn
  secrets_kms_key_arn  = module.kms.key_arn
  log_kms_key_arn      = module.kms.key_arn
  log_retention_days   = var.log_retention_days
}
