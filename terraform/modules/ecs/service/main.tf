# One Sluice service on Fargate: its own log group, task definition, service, roles
# (iam.tf) and autoscaling (autoscaling.tf). The app container runs `/sluice <command>`,
# serves /healthz and /metrics on var.port, and is health-checked by the binary itself
# (`sluice health`), since the image carries no shell or curl.

data "aws_region" "current" {}

locals {
  family = "${var.prefix}-${var.name}"

  # What the ADOT collector sidecar publishes: consumer lag for scaling, the metrics the
  # alarms watch, and the two end-to-end latency counts (var.e2e_latency_bucket).
  e2e_metrics = var.e2e_latency_bucket == null ? {} : {
    sluice_e2e_within_slo = [["ServiceName", "stage"]]
    sluice_e2e_records    = [["ServiceName", "stage"]]
  }
  published = merge(
    var.lag_scaling == null ? {} : { sluice_consumer_lag = [["ServiceName", "group"]] },
    var.emf_metrics,
    local.e2e_metrics,
  )
  collector = length(local.published) > 0

  # The bucket of the bound becomes sluice_e2e_within_slo, the histogram's count
  # sluice_e2e_records: renamed, the receiver takes them as plain gauges (cumulative
  # counts), which the alarms difference per minute. The other buckets are dropped.
  e2e_relabel = var.e2e_latency_bucket == null ? [] : [
    {
      source_labels = ["__name__", "le"]
      regex         = "sluice_end_to_end_latency_seconds_bucket;${replace(coalesce(var.e2e_latency_bucket, "-"), ".", "\\.")}"
      target_label  = "__name__"
      replacement   = "sluice_e2e_within_slo"
      action        = "replace"
    },
    {
      source_labels = ["__name__"]
      regex         = "sluice_end_to_end_latency_seconds_count"
      target_label  = "__name__"
      replacement   = "sluice_e2e_records"
      action        = "replace"
    },
  ]

  # The ADOT collector scrapes this task's /metrics, keeps only the published metrics
  # and writes them as CloudWatch embedded metric format to its own log group: one metric
  # per declared dimension set. For sluice_consumer_lag that is one per (ServiceName,
  # group), whose Maximum is the largest partition lag of that group.
  otel_config = !local.collector ? null : {
    extensions = { health_check = { endpoint = "127.0.0.1:13133" } }
    receivers = {
      prometheus = {
        config = {
          scrape_configs = [{
            job_name        = "sluice"
            scrape_interval = "30s"
            static_configs = [{
              targets = ["127.0.0.1:${var.port}"]
              labels  = { ServiceName = local.family }
            }]
            metric_relabel_configs = concat(local.e2e_relabel, [
              {
                source_labels = ["__name__"]
                regex         = join("|", sort(keys(local.published)))
                action        = "keep"
              },
              {
                regex  = "le"
                action = "labeldrop"
              },
            ])
          }]
        }
      }
    }
    exporters = {
      awsemf = {
        namespace               = var.metrics_namespace
        log_group_name          = aws_cloudwatch_log_group.metrics[0].name
        log_stream_name         = "{TaskId}"
        dimension_rollup_option = "NoDimensionRollup"
        metric_declarations = [for name, dims in local.published : {
          dimensions            = dims
          metric_name_selectors = [name]
        }]
      }
    }
    service = {
      extensions = ["health_check"]
      pipelines  = { metrics = { receivers = ["prometheus"], exporters = ["awsemf"] } }
    }
  }
}

resource "aws_cloudwatch_log_group" "app" {
  #checkov:skip=CKV_AWS_338:Service logs are for operations; retention is a per-environment variable (30 to 90 days), long-term audit lives in CloudTrail.
  name              = "/sluice/${var.prefix}/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
}

resource "aws_cloudwatch_log_group" "metrics" {
  #checkov:skip=CKV_AWS_338:Embedded-metric-format records only feed CloudWatch metrics; the metrics themselves are kept 15 months by CloudWatch.
  count = local.collector ? 1 : 0

  name              = "/sluice/${var.prefix}/${var.name}/metrics"
  retention_in_days = 7
  kms_key_id        = var.log_kms_key_arn
}

resource "aws_ecs_task_definition" "this" {
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

  # The root file system is read-only; /tmp is a task-local scratch volume.
  volume {
    name = "tmp"
  }

  # The state stores (process: --state-dir), on the task's ephemeral storage.
  dynamic "volume" {
    for_each = var.state_dir == "" ? [] : [var.state_dir]
    content {
      name = "state"
    }
  }

  dynamic "ephemeral_storage" {
    for_each = var.ephemeral_storage_gib == 0 ? [] : [var.ephemeral_storage_gib]
    content {
      size_in_gib = ephemeral_storage.value
    }
  }

  container_definitions = jsonencode(concat(
    [{
      name                   = var.name
      image                  = var.image
      essential              = true
      entryPoint             = ["/sluice"]
      command                = var.command
      readonlyRootFilesystem = true
      stopTimeout            = var.stop_timeout
      portMappings           = [{ containerPort = var.port, protocol = "tcp", name = "http" }]
      environment            = [for k, v in var.environment : { name = k, value = v }]
      secrets                = [for k, v in var.secrets : { name = k, valueFrom = v }]
      mountPoints = concat([{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }],
      var.state_dir == "" ? [] : [{ sourceVolume = "state", containerPath = var.state_dir, readOnly = false }])
      ulimits         = [{ name = "nofile", softLimit = 65536, hardLimit = 65536 }]
      linuxParameters = { initProcessEnabled = true }
      healthCheck = {
        command     = ["CMD", "/sluice", "health", "--url", "http://127.0.0.1:${var.port}/healthz"]
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 30
      }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.app.name
          awslogs-region        = data.aws_region.current.region
          awslogs-stream-prefix = var.name
          mode                  = "non-blocking"
          max-buffer-size       = "8m"
        }
      }
    }],
    !local.collector ? [] : [{
      name                   = "otel-collector"
      image                  = var.otel_collector_image
      essential              = false
      readonlyRootFilesystem = true
      environment            = [{ name = "AOT_CONFIG_CONTENT", value = yamlencode(local.otel_config) }]
      healthCheck = {
        command     = ["CMD", "/healthcheck"]
        interval    = 30
        timeout     = 5
        retries     = 3
        startPeriod = 15
      }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.app.name
          awslogs-region        = data.aws_region.current.region
          awslogs-stream-prefix = "otel-collector"
        }
      }
    }],
  ))
}

resource "aws_ecs_service" "this" {
  name                               = var.name
  cluster                            = var.cluster_arn
  task_definition                    = aws_ecs_task_definition.this.arn
  desired_count                      = var.desired_count
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  propagate_tags                     = "SERVICE"
  enable_ecs_managed_tags            = true
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = var.target_group_arn == null ? null : 60

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [var.security_group_id]
    assign_public_ip = false
  }

  dynamic "load_balancer" {
    for_each = var.target_group_arn == null ? [] : [var.target_group_arn]

    content {
      target_group_arn = load_balancer.value
      container_name   = var.name
      container_port   = var.port
    }
  }

  # Autoscaling owns the task count once the service exists.
  lifecycle {
    ignore_changes = [desired_count]
  }
}
