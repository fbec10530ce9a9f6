# Operational alarms of a Sluice environment and where they go. Every alarm notifies
# one SNS topic (encrypted with the platform key; var.alarm_email_addresses are
# subscribed) and var.alarm_action_arns, on alarm and on recovery. The alarms, what each
# means and what to check first are listed in terraform/README.md; the Prometheus rules
# of the compose stack watch the same signals (docs/OPERATIONS.md, "Alerts").
#
# Where the numbers come from:
# - the ALB and MSK publish their own metrics (AWS/ApplicationELB, AWS/Kafka);
# - the ADOT sidecars of process and sink publish the Sluice metrics the alarms need to
#   var.metrics_namespace (modules/ecs/service/main.tf): dead-letter depth and oldest
#   age (process), sink freshness (sink), and per stage the count of records within the
#   latency bound and of all records (sluice_e2e_within_slo, sluice_e2e_records);
# - task stops are ECS events, counted by an EventBridge rule per service (restarts.tf).

locals {
  actions = concat([aws_sns_topic.alarms.arn], var.alarm_action_arns)
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  display_name      = "Sluice ${var.name} alarms"
  kms_master_key_id = var.kms_key_arn
}

resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.alarm_email_addresses)

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}
