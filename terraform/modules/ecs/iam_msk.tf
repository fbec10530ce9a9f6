# MSK IAM access per service, scoped to this cluster and to the topic, group and
# transactional-id names Sluice uses (SPEC section 5; groups sluice.<stage>,
# transactional ids sluice.<stage>.<instance>; ingest writes each request in a
# transaction under sluice.ingest.<instance>.<n>, and reads the raw topics'
# max.message.bytes at start-up).
#
# Common to all three: connect; describe and create the pipeline's topics (each service
# runs EnsureTopics at start-up, creating only what is missing); describe the sluice.*
# groups (the lag monitor); read the dead-letter topics (the DLQ depth and age monitor).

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  kafka_arn = "arn:${data.aws_partition.current.partition}:kafka:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}"
  cluster   = "${var.msk_cluster_name}/${var.msk_cluster_uuid}"

  cluster_arn = "${local.kafka_arn}:cluster/${local.cluster}"
  topic_arns  = { for k, names in local.topics : k => [for t in names : "${local.kafka_arn}:topic/${local.cluster}/${t}"] }
  group_arns  = { for k, names in local.groups : k => [for g in names : "${local.kafka_arn}:group/${local.cluster}/${g}"] }
  txn_arn     = "${local.kafka_arn}:transactional-id/${local.cluster}/sluice.*"
  ingest_txn  = "${local.kafka_arn}:transactional-id/${local.cluster}/sluice.ingest.*"

  topics = {
    raw      = var.event_topics
    clean    = [for t in var.event_topics : "${t}.clean"]
    derived  = [for t in var.event_topics : "${t}.*"]
    dlq      = concat([for t in var.event_topics : "${t}.dlq"], ["_sluice.*.dlq"])
    agg      = ["agg.*"]
    internal = ["_sluice.*"]
    retry    = ["_sluice.retry.*"]
    all      = concat(var.event_topics, [for t in var.event_topics : "${t}.*"], ["agg.*", "_sluice.*"])
  }
  groups = {
    all     = ["sluice.*"]
    process = ["sluice.clean", "sluice.retry", "sluice.repartition.*", "sluice.agg.*"]
    sink    = ["sluice.sink"]
  }

  # Per service: topics it reads and writes, groups it joins, the transactional ids it
  # uses, the topics whose configuration it reads.
  access = {
    ingest = {
      read    = local.topic_arns.dlq
      write   = local.topic_arns.raw
      join    = []
      txn     = [local.ingest_txn]
      configs = local.topic_arns.raw
    }
    process = {
      read    = concat(local.topic_arns.raw, local.topic_arns.clean, local.topic_arns.dlq, local.topic_arns.internal)
      write   = concat(local.topic_arns.derived, local.topic_arns.agg, local.topic_arns.internal)
      join    = local.group_arns.process
      txn     = [local.txn_arn]
      configs = []
    }
    sink = {
      read    = concat(local.topic_arns.clean, local.topic_arns.agg, local.topic_arns.dlq)
      write   = concat(local.topic_arns.dlq, local.topic_arns.retry)
      join    = local.group_arns.sink
      txn     = []
      configs = []
    }
  }
}

data "aws_iam_policy_document" "msk" {
  for_each = local.access

  statement {
    sid       = "Connect"
    actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster", "kafka-cluster:WriteDataIdempotently"]
    resources = [local.cluster_arn]
  }

  statement {
    sid       = "EnsureTopics"
    actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:CreateTopic"]
    resources = local.topic_arns.all
  }

  statement {
    sid       = "DescribeGroups"
    actions   = ["kafka-cluster:DescribeGroup"]
    resources = local.group_arns.all
  }

  statement {
    sid       = "Read"
    actions   = ["kafka-cluster:ReadData"]
    resources = each.value.read
  }

  statement {
    sid       = "Write"
    actions   = ["kafka-cluster:WriteData"]
    resources = each.value.write
  }

  dynamic "statement" {
    for_each = length(each.value.join) == 0 ? [] : [1]

    content {
      sid       = "JoinOwnGroups"
      actions   = ["kafka-cluster:AlterGroup"]
      resources = each.value.join
    }
  }

  dynamic "statement" {
    for_each = length(each.value.txn) == 0 ? [] : [1]

    content {
      sid       = "Transactions"
      actions   = ["kafka-cluster:DescribeTransactionalState", "kafka-cluster:AlterTransactionalState"]
      resources = each.value.txn
    }
  }

  dynamic "statement" {
    for_each = length(each.value.configs) == 0 ? [] : [1]

    content {
      sid       = "TopicLimits"
      actions   = ["kafka-cluster:DescribeTopicDynamicConfiguration"]
      resources = each.value.configs
    }
  }
}
