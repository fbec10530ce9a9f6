# The Fargate cluster and the three Sluice services. All run the same image; what differs
# is the subcommand, the environment, the secrets, the MSK permissions (iam_msk.tf) and
# how they scale. Each service gets its own roles and log group (./service).

data "aws_region" "current" {}

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enhanced"
  }
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

locals {
  # Every flag of `sluice` reads SLUICE_<FLAG_IN_UPPER_SNAKE> (README.md#commands).
  # The process service's state stores (--state-dir), on the task's ephemeral storage.
  process_state_dir = "/var/lib/sluice/state"
  common_env = {
    AWS_REGION                  = data.aws_region.current.region
    SLUICE_BROKERS              = var.bootstrap_brokers
    SLUICE_KAFKA_TLS            = "true"
    SLUICE_KAFKA_SASL_MECHANISM = "AWS_MSK_IAM"
    SLUICE_REGISTRY_URL         = var.registry_url
    SLUICE_HTTP_ADDR            = ":8080"
    SLUICE_LOG_FORMAT           = "json"
    SLUICE_LOG_LEVEL            = var.log_level
  }
  sink_env = {
    SLUICE_WAREHOUSE           = "snowflake"
    SLUICE_SNOWFLAKE_ACCOUNT   = var.snowflake.account
    SLUICE_SNOWFLAKE_USER      = var.snowflake.user
    SLUICE_SNOWFLAKE_ROLE      = var.snowflake.role
    SLUICE_SNOWFLAKE_WAREHOUSE = var.snowflake.warehouse
    SLUICE_SNOWFLAKE_DATABASE  = var.snowflake.database
    SLUICE_SNOWFLAKE_SCHEMA    = var.snowflake.schema
  }
  metrics_namespace = "Sluice/${var.name}"

  # The consumer groups whose lag scales each consumer service: every stage group of the
  # processor (clean, retry, and per aggregation repartition and aggregate), and the
  # sink's own group. terraform/iam_test.go checks them against the code's group list.
  lag_groups = {
    process = concat(["sluice.clean", "sluice.retry"],
      [for a in var.aggregations : "sluice.repartition.${a}"],
    [for a in var.aggregations : "sluice.agg.${a}"])
    sink = ["sluice.sink"]
  }
}

module "ingest" {
  source = "./service"

  name                 = "ingest"
  prefix               = var.name
  cluster_arn          = aws_ecs_cluster.this.arn
  cluster_name         = aws_ecs_cluster.this.name
  image                = var.image
  command              = ["ingest"]
  cpu                  = var.services["ingest"].cpu
  memory               = var.services["ingest"].memory
  cpu_architecture     = var.cpu_architecture
  desired_count        = var.services["ingest"].desired_count
  min_count            = var.services["ingest"].min_count
  max_count            = var.services["ingest"].max_count
  subnet_ids           = var.private_subnet_ids
  security_group_id    = var.security_group_ids["ingest"]
  environment          = local.common_env
  secrets              = { SLUICE_JWT_HS256_SECRET = var.jwt_secret_arn }
  secret_arns          = [var.jwt_secret_arn]
  secrets_kms_key_arn  = var.secrets_kms_key_arn
  task_policy_json     = data.aws_iam_policy_document.msk["ingest"].json
  ecr_repository_arn   = var.ecr_repository_arn
  log_kms_key_arn      = var.log_kms_key_arn
  log_retention_days   = var.log_retention_days
  target_group_arn     = var.target_group_arn
  alb_resource_label   = var.alb_resource_label
  otel_collector_image = var.otel_collector_image
  metrics_namespace    = local.metrics_namespace
}

module "process" {
  source = "./service"

  name                 = "process"
  prefix               = var.name
  cluster_arn          = aws_ecs_cluster.this.arn
  cluster_name         = aws_ecs_cluster.this.name
  image                = var.image
  command              = ["process"]
  cpu                  = var.services["process"].cpu
  memory               = var.services["process"].memory
  cpu_architecture     = var.cpu_architecture
  desired_count        = var.services["process"].desired_count
  min_count            = var.services["process"].min_count
  max_count            = var.services["process"].max_count
  subnet_ids           = var.private_subnet_ids
  security_group_id    = var.security_group_ids["process"]
  environment          = merge(local.common_env, { SLUICE_STATE_DIR = local.process_state_dir })
  secrets_kms_key_arn  = var.secrets_kms_key_arn
  task_policy_json     = data.aws_iam_policy_document.msk["process"].json
  ecr_repository_arn   = var.ecr_repository_arn
  log_kms_key_arn      = var.log_kms_key_arn
  log_retention_days   = var.log_retention_days
  otel_collector_image = var.otel_collector_image
  metrics_namespace    = local.metrics_namespace
  # The state stores (pebble) live on the task's ephemeral storage; a new task restores
  # them from their changelogs (docs/OPERATIONS.md, State on disk).
  state_dir             = local.process_state_dir
  ephemeral_storage_gib = var.process_ephemeral_storage_gib
  # The monitor's dead-letter gauges and the clean and aggregate stages' end-to-end
  # latency, for the alarms (modules/alarms).
  emf_metrics = {
    sluice_dead_letter_depth              = [["ServiceName", "topic"]]
    sluice_dead_letter_oldest_age_seconds = [["ServiceName"]]
  }
  e2e_latency_bucket = var.e2e_latency_p95_seconds.clean
  # The clean stage reads every raw topic, the retry stage every delay tier, each
  # repartition stage a clean topic and each aggregate stage its repartition topic.
  lag_scaling = {
    groups = local.lag_groups.process
    high   = var.lag_high
    low    = var.lag_low
  }
}

module "sink" {
  source = "./service"

  name                 = "sink"
  prefix               = var.name
  cluster_arn          = aws_ecs_cluster.this.arn
  cluster_name         = aws_ecs_cluster.this.name
  image                = var.image
  command              = ["sink"]
  cpu                  = var.services["sink"].cpu
  memory               = var.services["sink"].memory
  cpu_architecture     = var.cpu_architecture
  desired_count        = var.services["sink"].desired_count
  min_count            = var.services["sink"].min_count
  max_count            = var.services["sink"].max_count
  subnet_ids           = var.private_subnet_ids
  security_group_id    = var.security_group_ids["sink"]
  environment          = merge(local.common_env, local.sink_env)
  secrets_kms_key_arn  = var.secrets_kms_key_arn
  task_policy_json     = data.aws_iam_policy_document.msk["sink"].json
  ecr_repository_arn   = var.ecr_repository_arn
  log_kms_key_arn      = var.log_kms_key_arn
  log_retention_days   = var.log_retention_days
  otel_collector_image = var.otel_collector_image
  metrics_namespace    = local.metrics_namespace
  # The PEM goes in as content, not a path: the root file system is read-only.
  secrets = {
    SLUICE_SNOWFLAKE_PRIVATE_KEY            = "${var.snowflake_secret_arn}:private_key::"
    SLUICE_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE = "${var.snowflake_secret_arn}:private_key_passphrase::"
  }
  secret_arns = [var.snowflake_secret_arn]
  # Warehouse freshness and ingest-to-warehouse latency, for the alarms (modules/alarms).
  emf_metrics        = { sluice_sink_freshness_seconds = [["ServiceName"]] }
  e2e_latency_bucket = var.e2e_latency_p95_seconds.sink
  lag_scaling = {
    groups = local.lag_groups.sink
    high   = var.lag_high
    low    = var.lag_low
  }
}
