# The metric alarms. Each names its metric, namespace and threshold variable (checked by
# terraform/alarms_test.go); README.md says what each means and what to check first.

locals {
  # The stage of each end-to-end latency alarm and the service that publishes it.
  e2e_service = { clean = "process", agg = "process", sink = "sink" }
  broker_ids  = [for i in range(var.msk_broker_count) : tostring(i + 1)]
}

# More than alb_5xx_percent of the API's requests answered 5xx (by Sluice or by the ALB
# itself) for 5 minutes in a row; quiet minutes (fewer than 20 requests) never count.
resource "aws_cloudwatch_metric_alarm" "alb_5xx" {
  alarm_name          = "${var.name}-alb-5xx-rate"
  alarm_description   = "sluice ingest: more than ${var.thresholds.alb_5xx_percent}% of API requests got a 5xx for 5 minutes"
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.thresholds.alb_5xx_percent
  evaluation_periods  = 5
  datapoints_to_alarm = 5
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  metric_query {
    id = "requests"

    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "RequestCount"
      period      = 60
      stat        = "Sum"
      dimensions  = { LoadBalancer = var.alb_arn_suffix }
    }
  }

  metric_query {
    id = "target5xx"

    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_Target_5XX_Count"
      period      = 60
      stat        = "Sum"
      dimensions  = { LoadBalancer = var.alb_arn_suffix }
    }
  }

  metric_query {
    id = "elb5xx"

    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_ELB_5XX_Count"
      period      = 60
      stat        = "Sum"
      dimensions  = { LoadBalancer = var.alb_arn_suffix }
    }
  }

  metric_query {
    id          = "rate"
    expression  = "IF(requests >= 20, 100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / requests, 0)"
    label       = "5xx percent of requests"
    return_data = true
  }
}

# A registered ingest task failing the ALB health check (/readyz) for 3 minutes.
resource "aws_cloudwatch_metric_alarm" "alb_unhealthy_hosts" {
  alarm_name          = "${var.name}-alb-unhealthy-hosts"
  alarm_description   = "sluice ingest: more than ${var.thresholds.alb_unhealthy_hosts} ingest task(s) failing /readyz at the ALB for 3 minutes"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "UnHealthyHostCount"
  dimensions          = { LoadBalancer = var.alb_arn_suffix, TargetGroup = var.target_group_arn_suffix }
  statistic           = "Maximum"
  period              = 60
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.thresholds.alb_unhealthy_hosts
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

# A broker's data disk fuller than msk_disk_used_percent for 10 minutes (one alarm per
# broker: the metric is published per broker).
resource "aws_cloudwatch_metric_alarm" "msk_disk_used" {
  for_each = toset(local.broker_ids)

  alarm_name          = "${var.name}-msk-disk-used-broker-${each.key}"
  alarm_description   = "MSK ${var.msk_cluster_name}: broker ${each.key} data disk more than ${var.thresholds.msk_disk_used_percent}% full for 10 minutes"
  namespace           = "AWS/Kafka"
  metric_name         = "KafkaDataLogsDiskUsed"
  dimensions          = { "Cluster Name" = var.msk_cluster_name, "Broker ID" = each.key }
  statistic           = "Maximum"
  period              = 300
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.thresholds.msk_disk_used_percent
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

# More than dead_letters_new records arrived in a dead-letter topic within 5 minutes
# (its depth grew; retention deleting old ones only lowers it).
resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  for_each = toset(var.dead_letter_topics)

  alarm_name          = "${var.name}-dead-letters-${each.key}"
  alarm_description   = "sluice: more than ${var.thresholds.dead_letters_new} new dead letter(s) in ${each.key} within 5 minutes"
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.thresholds.dead_letters_new
  evaluation_periods  = 1
  datapoints_to_alarm = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  metric_query {
    id = "depth"

    metric {
      namespace   = var.metrics_namespace
      metric_name = "sluice_dead_letter_depth"
      period      = 300
      stat        = "Maximum"
      dimensions  = { ServiceName = var.service_dimensions["process"], topic = each.key }
    }
  }

  metric_query {
    id          = "arrived"
    expression  = "DIFF(depth)"
    label       = "dead letters added in 5 minutes"
    return_data = true
  }
}

# The oldest dead letter of any dead-letter topic first failed more than
# dead_letter_oldest_age_seconds ago: nobody replayed or dismissed it.
resource "aws_cloudwatch_metric_alarm" "dead_letter_oldest_age" {
  alarm_name          = "${var.name}-dead-letter-oldest-age"
  alarm_description   = "sluice: a dead letter is older than ${var.thresholds.dead_letter_oldest_age_seconds}s (inspect and replay it, or accept the loss)"
  namespace           = var.metrics_namespace
  metric_name         = "sluice_dead_letter_oldest_age_seconds"
  dimensions          = { ServiceName = var.service_dimensions["process"] }
  statistic           = "Maximum"
  period              = 300
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.thresholds.dead_letter_oldest_age_seconds
  evaluation_periods  = 1
  datapoints_to_alarm = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}

# p95 of a stage's end-to-end latency above its bound for 10 minutes: more than 5% of
# the records the stage committed each minute took longer than the bound. Both counts
# are cumulative per task; the average over tasks, differenced per minute, is the
# records of the minute per task, so their ratio is the minute's share. A minute in
# which a task starts or stops (a count going down) counts as fine.
resource "aws_cloudwatch_metric_alarm" "e2e_latency_p95" {
  for_each = var.thresholds.e2e_latency_p95_seconds

  alarm_name          = "${var.name}-e2e-latency-p95-${each.key}"
  alarm_description   = "sluice ${each.key}: p95 of ingest-to-committed latency above ${each.value}s for 10 minutes (more than 5% of records slower)"
  comparison_operator = "GreaterThanThreshold"
  threshold           = 5
  evaluation_periods  = 10
  datapoints_to_alarm = 10
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions

  metric_query {
    id = "within"

    metric {
      namespace   = var.metrics_namespace
      metric_name = "sluice_e2e_within_slo"
      period      = 60
      stat        = "Average"
      dimensions  = { ServiceName = var.service_dimensions[local.e2e_service[each.key]], stage = each.key }
    }
  }

  metric_query {
    id = "records"

    metric {
      namespace   = var.metrics_namespace
      metric_name = "sluice_e2e_records"
      period      = 60
      stat        = "Average"
      dimensions  = { ServiceName = var.service_dimensions[local.e2e_service[each.key]], stage = each.key }
    }
  }

  metric_query {
    id          = "dw"
    expression  = "DIFF(within)"
    label       = "records within the bound this minute, per task"
    return_data = false
  }

  metric_query {
    id          = "dr"
    expression  = "DIFF(records)"
    label       = "records this minute, per task"
    return_data = false
  }

  metric_query {
    id          = "slow"
    expression  = "IF(dr > 0 AND dw >= 0 AND dw <= dr, 100 * (dr - dw) / dr, 0)"
    label       = "percent of records slower than ${each.value}s"
    return_data = true
  }
}

# The newest row the sink committed to some warehouse table is older than
# sink_freshness_seconds (ingest time to now) for 5 minutes.
resource "aws_cloudwatch_metric_alarm" "sink_freshness" {
  alarm_name          = "${var.name}-sink-freshness"
  alarm_description   = "sluice sink: a warehouse table's newest row is older than ${var.thresholds.sink_freshness_seconds}s for 5 minutes"
  namespace           = var.metrics_namespace
  metric_name         = "sluice_sink_freshness_seconds"
  dimensions          = { ServiceName = var.service_dimensions["sink"] }
  statistic           = "Maximum"
  period              = 60
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.thresholds.sink_freshness_seconds
  evaluation_periods  = 5
  datapoints_to_alarm = 5
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}
