# ECS task restarts. ECS replaces a task whose essential container exited, that failed
# to start, or that failed its health checks; each such stop is an "ECS Task State
# Change" event. One EventBridge rule per service matches them (deployments and
# scale-in stop tasks too, with other stop codes and reasons, and do not match) and
# records each in a log group, with the stop code and reason; the alarm counts the
# rule's matches (AWS/Events TriggeredRules) over 15 minutes.

resource "aws_cloudwatch_log_group" "task_stops" {
  #checkov:skip=CKV_AWS_338:Task-stop records are for diagnosing a recent restart; ECS itself keeps stopped tasks only an hour, and a year of them has no audit use.
  name              = "/aws/events/${var.name}/task-stops"
  retention_in_days = var.task_stop_log_retention_days
  kms_key_id        = var.kms_key_arn
}

# EventBridge writes to the log group under this resource policy (rules of this
# account only).
data "aws_iam_policy_document" "task_stops" {
  statement {
    sid       = "EventBridgeWritesTaskStops"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.task_stops.arn}:*"]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com", "delivery.logs.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [for r in aws_cloudwatch_event_rule.task_stopped : r.arn]
    }
  }
}

resource "aws_cloudwatch_log_resource_policy" "task_stops" {
  policy_name     = "${var.name}-task-stops"
  policy_document = data.aws_iam_policy_document.task_stops.json
}

resource "aws_cloudwatch_event_rule" "task_stopped" {
  for_each = var.ecs_service_names

  name        = "${var.name}-${each.key}-task-stopped"
  description = "sluice ${each.key}: a task stopped because a container exited, it failed to start or failed its health checks"
  event_pattern = jsonencode({
    source        = ["aws.ecs"]
    "detail-type" = ["ECS Task State Change"]
    detail = {
      clusterArn = [var.ecs_cluster_arn]
      group      = ["service:${each.value}"]
      lastStatus = ["STOPPED"]
      "$or" = [
        { stopCode = ["EssentialContainerExited", "TaskFailedToStart"] },
        { stoppedReason = [{ prefix = "Task failed" }] },
      ]
    }
  })
}

resource "aws_cloudwatch_event_target" "task_stopped" {
  for_each = aws_cloudwatch_event_rule.task_stopped

  rule = each.value.name
  arn  = aws_cloudwatch_log_group.task_stops.arn
}

resource "aws_cloudwatch_metric_alarm" "task_restarts" {
  for_each = aws_cloudwatch_event_rule.task_stopped

  alarm_name          = "${var.name}-${each.key}-task-restarts"
  alarm_description   = "sluice ${each.key}: more than ${var.thresholds.task_restarts} task(s) stopped unexpectedly within 15 minutes (stop reasons in ${aws_cloudwatch_log_group.task_stops.name})"
  namespace           = "AWS/Events"
  metric_name         = "TriggeredRules"
  dimensions          = { RuleName = each.value.name }
  statistic           = "Sum"
  period              = 900
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.thresholds.task_restarts
  evaluation_periods  = 1
  datapoints_to_alarm = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.actions
  ok_actions          = local.actions
}
