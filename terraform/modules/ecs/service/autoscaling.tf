# Autoscaling. Every service tracks CPU. Ingest also tracks requests per task at the ALB.
# Consumers (process, sink) also scale on consumer lag, the signal that matters for them:
# a stage can be behind with idle CPUs (waiting on transactions or on Snowflake).
#
# Where the lag comes from: process and sink (which run the monitor) export
# sluice_consumer_lag{group,topic,partition} on /metrics. The ADOT collector sidecar (main.tf) publishes it to CloudWatch
# as <metrics_namespace>/sluice_consumer_lag with dimensions ServiceName and group. Each task
# reports the whole group's lag (not just its own partitions), so the statistic used is
# Maximum: the most-behind partition. That is not proportional to the task count, which
# target tracking assumes, so lag drives step scaling from two alarms instead: above
# `high` for 3 minutes adds one task (two beyond 5x high); under `low` for 15 minutes
# removes one. For lag-scaled services CPU tracking only scales out, so that the two
# signals never fight over scale-in. More tasks than input partitions only idle, hence
# max_count.

locals {
  resource_id = "service/${var.cluster_name}/${aws_ecs_service.this.name}"
  lag_metrics = var.lag_scaling == null ? {} : {
    for i, g in var.lag_scaling.groups : "m${i}" => g
  }
  lag_expression = "MAX([${join(",", keys(local.lag_metrics))}])"
}

resource "aws_appautoscaling_target" "this" {
  service_namespace  = "ecs"
  resource_id        = local.resource_id
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_count
  max_capacity       = var.max_count
}

resource "aws_appautoscaling_policy" "cpu" {
  name               = "${local.family}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    disable_scale_in   = var.lag_scaling != null

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "requests" {
  count = var.alb_resource_label == null ? 0 : 1

  name               = "${local.family}-requests"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.requests_per_target
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = var.alb_resource_label
    }
  }
}

resource "aws_appautoscaling_policy" "lag_out" {
  count = var.lag_scaling == null ? 0 : 1

  name               = "${local.family}-lag-out"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  step_scaling_policy_configuration {
    adjustment_type         = "ChangeInCapacity"
    cooldown                = 180
    metric_aggregation_type = "Maximum"

    # Bounds are relative to the alarm threshold (var.lag_scaling.high).
    step_adjustment {
      metric_interval_lower_bound = 0
      metric_interval_upper_bound = 4 * var.lag_scaling.high
      scaling_adjustment          = 1
    }

    step_adjustment {
      metric_interval_lower_bound = 4 * var.lag_scaling.high
      scaling_adjustment          = 2
    }
  }
}

resource "aws_appautoscaling_policy" "lag_in" {
  count = var.lag_scaling == null ? 0 : 1

  name               = "${local.family}-lag-in"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  step_scaling_policy_configuration {
    adjustment_type         = "ChangeInCapacity"
    cooldown                = 600
    metric_aggregation_type = "Maximum"

    step_adjustment {
      metric_interval_upper_bound = 0
      scaling_adjustment          = -1
    }
  }
}

locals {
  # The two lag alarms: above high for 3 minutes adds tasks, at or below low for 15
  # minutes removes one. They differ only in these settings.
  lag_alarms = var.lag_scaling == null ? {} : {
    high = {
      description = "a partition of ${join(", ", var.lag_scaling.groups)} is more than ${var.lag_scaling.high} records behind; adds tasks"
      comparison  = "GreaterThanThreshold"
      threshold   = var.lag_scaling.high
      periods     = 3
      action      = aws_appautoscaling_policy.lag_out[0].arn
    }
    low = {
      description = "every partition of ${join(", ", var.lag_scaling.groups)} within ${var.lag_scaling.low} records for 15 minutes; removes a task"
      comparison  = "LessThanOrEqualToThreshold"
      threshold   = var.lag_scaling.low
      periods     = 15
      action      = aws_appautoscaling_policy.lag_in[0].arn
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "lag" {
  for_each = local.lag_alarms

  alarm_name          = "${local.family}-consumer-lag-${each.key}"
  alarm_description   = "sluice ${var.name}: ${each.value.description}"
  comparison_operator = each.value.comparison
  threshold           = each.value.threshold
  evaluation_periods  = each.value.periods
  datapoints_to_alarm = each.value.periods
  treat_missing_data  = "notBreaching"
  alarm_actions       = [each.value.action]

  dynamic "metric_query" {
    for_each = local.lag_metrics

    content {
      id = metric_query.key

      metric {
        namespace   = var.metrics_namespace
        metric_name = "sluice_consumer_lag"
        period      = 60
        stat        = "Maximum"
        dimensions  = { ServiceName = local.family, group = metric_query.value }
      }
    }
  }

  metric_query {
    id          = "lag"
    expression  = local.lag_expression
    label       = "largest partition lag"
    return_data = true
  }
}
