# MSK IAM access per service, scoped to this cluster and to the names Sluice derives from
# the pipeline file's raw topics (pipeline/config/types.go): for each raw topic <t>,
# <t>.clean, <t>.dlq, <t>.late and the clean stage's _sluice.clean.<t>.dedup-changelog;
# per aggregation agg.<name>, _sluice.<name>.repartition and _sluice.agg.<name>.*; the
# retry tiers _sluice.retry.<delay> with _sluice.retry.dlq; the sink's _sluice.sink.dlq.
# Aggregation and retry-tier names are not known here, hence the agg.*, _sluice.agg.*,
# _sluice.*.repartition and _sluice.retry.* prefixes. Consumer groups are sluice.<stage>,
# transactional ids sluice.<stage>.<instance> (ingest: sluice.ingest.<instance>.<n>).
#
# What each service does, and so may do (terraform/iam_test.go derives it from the code
# and fails if these policies allow less, or match a name the service never touches):
# - every service connects, and describes and creates the pipeline's topics (each runs
#   EnsureTopics at start-up, creating only what is missing, and checks that the state
#   changelogs are compacted: their configuration);
# - ingest writes the raw topics in transactions, reads their max.message.bytes, and
#   reads every clean and aggregate topic for the WebSocket stream
#   (/api/v1/stream/{topic}, direct partition reads without a group). It runs no monitor
#   and joins no group;
# - process runs the clean, retry, repartition and aggregate stages: it reads their
#   inputs and changelogs, writes their outputs (the retry stage writes records back to
#   their raw topic), joins their groups and commits transactions under their ids; each
#   stage reads the brokers' transaction.max.timeout.ms at start-up;
# - sink reads the clean and aggregate topics in group sluice.sink and writes what the
#   warehouse refuses to <t>.dlq or _sluice.sink.dlq;
# - process and sink run the monitor: they read every dead-letter topic (depth and age)
#   and describe every sluice.* group (consumer lag, retry depth).

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  kafka_arn = "arn:${data.aws_partition.current.partition}:kafka:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}"
  cluster   = "${var.msk_cluster_name}/${var.msk_cluster_uuid}"

  cluster_arn = "${local.kafka_arn}:cluster/${local.cluster}"
  topic_arns  = { for k, names in local.topics : k => [for t in names : "${local.kafka_arn}:topic/${local.cluster}/${t}"] }
  group_arns  = { for k, names in local.groups : k => [for g in names : "${local.kafka_arn}:group/${local.cluster}/${g}"] }
  txn_arns    = { for k, ids in local.txn_ids : k => [for i in ids : "${local.kafka_arn}:transactional-id/${local.cluster}/${i}"] }

  topics = {
    raw   = var.event_topics
    clean = [for t in var.event_topics : "${t}.clean"]
    dlq   = [for t in var.event_topics : "${t}.dlq"]
    late  = [for t in var.event_topics : "${t}.late"]
    # Every dead-letter topic: the monitor reads them all.
    dead_letters = concat([for t in var.event_topics : "${t}.dlq"], ["_sluice.retry.dlq", "_sluice.sink.dlq"])
    sink_dlq     = ["_sluice.sink.dlq"]
    agg          = ["agg.*"]
    # The delay tiers and _sluice.retry.dlq.
    retry       = ["_sluice.retry.*"]
    repartition = ["_sluice.*.repartition"]
    changelogs  = concat([for t in var.event_topics : "_sluice.clean.${t}.dedup-changelog"], ["_sluice.agg.*"])
    all         = concat(var.event_topics, [for t in var.event_topics : "${t}.*"], ["agg.*", "_sluice.*"])
  }
  groups = {
    all     = ["sluice.*"]
    process = ["sluice.clean", "sluice.retry", "sluice.repartition.*", "sluice.agg.*"]
    sink    = ["sluice.sink"]
  }
  txn_ids = {
    ingest  = ["sluice.ingest.*"]
    process = ["sluice.clean.*", "sluice.retry.*", "sluice.repartition.*", "sluice.agg.*"]
  }

  # Per service: topics it reads and writes, groups it joins and describes, the
  # transactional ids it uses, the topics whose configuration it reads, whether it reads
  # the brokers' configuration.
  access = {
    ingest = {
      read            = concat(local.topic_arns.clean, local.topic_arns.agg)
      write           = local.topic_arns.raw
      join            = []
      describe        = []
      txn             = local.txn_arns.ingest
      configs         = concat(local.topic_arns.raw, local.topic_arns.changelogs)
      cluster_configs = false
    }
    process = {
      read = concat(local.topic_arns.raw, local.topic_arns.clean, local.topic_arns.dead_letters, local.topic_arns.retry,
      local.topic_arns.repartition, local.topic_arns.changelogs)
      write = concat(local.topic_arns.raw, local.topic_arns.clean, local.topic_arns.dlq, local.topic_arns.late, local.topic_arns.agg,
      local.topic_arns.retry, local.topic_arns.repartition, local.topic_arns.changelogs)
      join            = local.group_arns.process
      describe        = local.group_arns.all
      txn             = local.txn_arns.process
      configs         = local.topic_arns.changelogs
      cluster_configs = true
    }
    sink = {
      read            = concat(local.topic_arns.clean, local.topic_arns.agg, local.topic_arns.dead_letters)
      write           = concat(local.topic_arns.dlq, local.topic_arns.sink_dlq)
      join            = local.group_arns.sink
      describe        = local.group_arns.all
      txn             = []
      configs         = local.topic_arns.changelogs
      cluster_configs = false
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

  dynamic "statement" {
    for_each = length(each.value.describe) == 0 ? [] : [1]

    content {
      sid       = "DescribeGroups"
      actions   = ["kafka-cluster:DescribeGroup"]
      resources = each.value.describe
    }
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
      sid       = "TopicConfigs"
      actions   = ["kafka-cluster:DescribeTopicDynamicConfiguration"]
      resources = each.value.configs
    }
  }

  dynamic "statement" {
    for_each = each.value.cluster_configs ? [1] : []

    content {
      sid       = "BrokerConfigs"
      actions   = ["kafka-cluster:DescribeClusterDynamicConfiguration"]
      resources = [local.cluster_arn]
    }
  }
}
