# An optional Kafka Connect worker on Fargate, for the Snowflake sink connector
# (com.snowflake:snowflake-kafka-connector) as the alternative to `sluice sink`: when
# to choose it and what it costs in guarantees is in docs/OPERATIONS.md; the connector
# config and the worker settings it is tested with are in deploy/connect/ (explained in
# docs/CONNECT.md). The stack creates it only with connect_enabled.
#
# The task renders deploy/connect/worker.properties' settings, with MSK's brokers and
# IAM authentication, into /tmp at start and runs connect-distributed.sh on it. The
# Snowflake key pair comes from Secrets Manager into the environment, the rest of the
# connector's per-environment values (SNOWFLAKE_*, SCHEMA_REGISTRY_*) are plain
# variables; the connector config takes them through Kafka's EnvVarConfigProvider
# (${env:SNOWFLAKE_PRIVATE_KEY} and so on), so they never reach the config topic. The
# connector itself is created through the REST API (port 8083, open to the workers'
# own security group only), as docs/CONNECT.md shows.

data "aws_region" "current" {}

locals {
  family    = "${var.name}-connect"
  rest_port = 8083
  # The worker group and internal topics of deploy/connect/worker.properties; iam.tf
  # grants exactly these.
  worker_group = "sluice-connect"
  internal_topics = {
    configs = "sluice-connect-configs"
    offsets = "sluice-connect-offsets"
    status  = "sluice-connect-status"
  }

  # The worker's own clients and the connector's consumer, producer and admin clients
  # all authenticate with IAM (aws-msk-iam-auth on the class path).
  iam_auth = {
    "security.protocol"                  = "SASL_SSL"
    "sasl.mechanism"                     = "AWS_MSK_IAM"
    "sasl.jaas.config"                   = "software.amazon.msk.auth.iam.IAMLoginModule required;"
    "sasl.client.callback.handler.class" = "software.amazon.msk.auth.iam.IAMClientCallbackHandler"
  }
  worker_properties = merge(
    merge([for prefix in ["", "consumer.", "producer.", "admin."] : {
      for k, v in local.iam_auth : "${prefix}${k}" => v
    }]...),
    {
      "bootstrap.servers"                       = var.bootstrap_brokers
      "group.id"                                = local.worker_group
      "config.storage.topic"                    = local.internal_topics.configs
      "offset.storage.topic"                    = local.internal_topics.offsets
      "status.storage.topic"                    = local.internal_topics.status
      "config.storage.replication.factor"       = "3"
      "offset.storage.replication.factor"       = "3"
      "status.storage.replication.factor"       = "3"
      "key.converter"                           = "org.apache.kafka.connect.json.JsonConverter"
      "value.converter"                         = "org.apache.kafka.connect.json.JsonConverter"
      "key.converter.schemas.enable"            = "false"
      "value.converter.schemas.enable"          = "false"
      "consumer.isolation.level"                = "read_committed"
      "connector.client.config.override.policy" = "All"
      "config.providers"                        = "env"
      "config.providers.env.class"              = "org.apache.kafka.common.config.provider.EnvVarConfigProvider"
      "plugin.path"                             = "/opt/kafka-connect/plugins"
      "listeners"                               = "http://0.0.0.0:${local.rest_port}"
      "offset.flush.interval.ms"                = "10000"
    },
  )
  properties_text = join("\n", [for k in sort(keys(local.worker_properties)) : "${k}=${local.worker_properties[k]}"])

  # The workers forward REST requests to the leader at the address each advertises:
  # the task's own, known only at run time.
  start = join("; ", [
    "printf '%s\\n' \"$WORKER_PROPERTIES\" > /tmp/worker.properties",
    "echo \"rest.advertised.host.name=$(hostname -i | cut -d' ' -f1)\" >> /tmp/worker.properties",
    "exec /opt/kafka/bin/connect-distributed.sh /tmp/worker.properties",
  ])

  environment = merge({
    AWS_REGION          = data.aws_region.current.region
    WORKER_PROPERTIES   = local.properties_text
    LOG_DIR             = "/tmp/logs"
    KAFKA_HEAP_OPTS     = "-XX:MaxRAMPercentage=75.0"
    SNOWFLAKE_URL       = "${var.snowflake.account}.snowflakecomputing.com:443"
    SNOWFLAKE_USER      = var.snowflake.user
    SNOWFLAKE_ROLE      = var.snowflake.role
    SNOWFLAKE_DATABASE  = var.snowflake.database
    SNOWFLAKE_SCHEMA    = var.snowflake.schema
    SCHEMA_REGISTRY_URL = var.registry_url
    }, var.registry_credentials_secret_arn != null ? {} : {
    # No registry credentials: the connector's basic auth sends none.
    SCHEMA_REGISTRY_USER_INFO = ""
  })
  secrets = concat([
    { name = "SNOWFLAKE_PRIVATE_KEY", valueFrom = "${var.snowflake_secret_arn}:private_key::" },
    { name = "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", valueFrom = "${var.snowflake_secret_arn}:private_key_passphrase::" },
    ], var.registry_credentials_secret_arn == null ? [] : [
    { name = "SCHEMA_REGISTRY_USER_INFO", valueFrom = "${var.registry_credentials_secret_arn}:user_info::" },
  ])
  secret_arns = compact([var.snowflake_secret_arn, var.registry_credentials_secret_arn])
}

resource "aws_cloudwatch_log_group" "connect" {
  #checkov:skip=CKV_AWS_338:Worker logs are for operations; retention is a per-environment variable (30 to 90 days), long-term audit lives in CloudTrail.
  name              = "/sluice/${var.name}/connect"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
}

resource "aws_ecs_task_definition" "connect" {
  family                   = local.family
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # The root file system is read-only; the worker properties and logs go to /tmp.
  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([{
    name                   = "connect"
    image                  = var.image
    essential              = true
    entryPoint             = ["sh", "-c"]
    command                = [local.start]
    readonlyRootFilesystem = true
    mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
    portMappings           = [{ containerPort = local.rest_port, protocol = "tcp", name = "rest" }]
    environment            = [for k, v in local.environment : { name = k, value = v }]
    secrets                = local.secrets
    ulimits                = [{ name = "nofile", softLimit = 65536, hardLimit = 65536 }]
    linuxParameters        = { initProcessEnabled = true }
    stopTimeout            = 60
    healthCheck = {
      command     = ["CMD-SHELL", "curl -fsS http://127.0.0.1:${local.rest_port}/ >/dev/null || exit 1"]
      interval    = 30
      timeout     = 5
      retries     = 3
      startPeriod = 120
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.connect.name
        awslogs-region        = data.aws_region.current.region
        awslogs-stream-prefix = "connect"
        mode                  = "non-blocking"
        max-buffer-size       = "8m"
      }
    }
  }])
}

resource "aws_ecs_service" "connect" {
  name                               = "connect"
  cluster                            = var.cluster_arn
  task_definition                    = aws_ecs_task_definition.connect.arn
  desired_count                      = var.desired_count
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  propagate_tags                     = "SERVICE"
  enable_ecs_managed_tags            = true
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [var.security_group_id]
    assign_public_ip = false
  }
}
