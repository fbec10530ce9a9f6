# The Connect worker's two roles: the execution role pulls the image, writes the logs
# and reads the Snowflake key secret; the task role is its MSK access, scoped like the
# Sluice services' (modules/ecs/iam_msk.tf) and checked the same way
# (terraform/connect_test.go):
# - the connector reads every clean topic and every aggregate topic, in its consumer
#   group connect-<connector name>;
# - the worker creates, reads and writes its three internal topics (and reads their
#   configuration, to check they are compacted) and joins its worker group;
# - it may write the connector's dead-letter topic, when its config names one.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  kafka_arn   = "arn:${data.aws_partition.current.partition}:kafka:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}"
  cluster     = "${var.msk_cluster_name}/${var.msk_cluster_uuid}"
  cluster_arn = "${local.kafka_arn}:cluster/${local.cluster}"

  source_topics = concat([for t in var.event_topics : "${t}.clean"], ["agg.*"])
  groups        = [local.worker_group, "connect-${var.connector_name}"]

  source_arns   = [for t in local.source_topics : "${local.kafka_arn}:topic/${local.cluster}/${t}"]
  internal_arns = [for t in values(local.internal_topics) : "${local.kafka_arn}:topic/${local.cluster}/${t}"]
  dlq_arns      = var.connector_dlq_topic == null ? [] : ["${local.kafka_arn}:topic/${local.cluster}/${var.connector_dlq_topic}"]
  group_arns    = [for g in local.groups : "${local.kafka_arn}:group/${local.cluster}/${g}"]
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${data.aws_partition.current.partition}:ecs:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:*"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${local.family}-execution"
  description        = "ECS agent for the Kafka Connect worker: image pull, logs, the Snowflake key secret"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

data "aws_iam_policy_document" "execution" {
  dynamic "statement" {
    for_each = var.ecr_repository_arn == null ? [] : [1]

    content {
      sid       = "EcrLogin"
      actions   = ["ecr:GetAuthorizationToken"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = var.ecr_repository_arn == null ? [] : [var.ecr_repository_arn]

    content {
      sid       = "EcrPull"
      actions   = ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"]
      resources = [statement.value]
    }
  }

  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.connect.arn}:*"]
  }

  statement {
    sid       = "ReadOwnSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = local.secret_arns
  }

  statement {
    sid       = "DecryptOwnSecrets"
    actions   = ["kms:Decrypt"]
    resources = [var.secrets_kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${data.aws_region.current.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "pull-log-secrets"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

resource "aws_iam_role" "task" {
  name               = "${local.family}-task"
  description        = "Kafka Connect worker at run time: MSK IAM access to its topics and groups only"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

data "aws_iam_policy_document" "msk" {
  statement {
    sid       = "Connect"
    actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster", "kafka-cluster:WriteDataIdempotently"]
    resources = [local.cluster_arn]
  }

  statement {
    sid       = "ReadSources"
    actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"]
    resources = local.source_arns
  }

  statement {
    sid = "InternalTopics"
    actions = ["kafka-cluster:DescribeTopic", "kafka-cluster:CreateTopic", "kafka-cluster:ReadData", "kafka-cluster:WriteData",
    "kafka-cluster:DescribeTopicDynamicConfiguration"]
    resources = local.internal_arns
  }

  statement {
    sid       = "Groups"
    actions   = ["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"]
    resources = local.group_arns
  }

  dynamic "statement" {
    for_each = length(local.dlq_arns) == 0 ? [] : [1]

    content {
      sid       = "WriteDeadLetters"
      actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:CreateTopic", "kafka-cluster:WriteData"]
      resources = local.dlq_arns
    }
  }
}

resource "aws_iam_role_policy" "msk" {
  name   = "msk"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.msk.json
}
