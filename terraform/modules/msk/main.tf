# A provisioned MSK cluster for Sluice: Kafka 4 in KRaft mode, TLS everywhere, IAM
# authentication only (no plaintext, no unauthenticated access), its own KMS key at rest,
# broker logs in CloudWatch and open monitoring for Prometheus.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_111:A key policy's Resource "*" means this key only; account-root kms:* is the AWS default that lets IAM policies govern the key.
  #checkov:skip=CKV_AWS_356:A key policy's Resource "*" means this key only, it cannot name other resources.
  #checkov:skip=CKV_AWS_109:Without the account-root statement the key becomes unmanageable; MSK uses it through grants it creates itself.
  statement {
    sid       = "AccountAdministersKey"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_kms_key" "msk" {
  description             = "${var.name}: MSK data at rest"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "msk" {
  name          = "alias/${var.name}-msk"
  target_key_id = aws_kms_key.msk.key_id
}

resource "aws_cloudwatch_log_group" "broker" {
  name              = "/sluice/${var.name}/msk-broker"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
}

# Server properties for exactly-once pipelines:
# - topics are created by Sluice (`sluice topics create`, or each service at start-up)
#   with explicit partitions, never implicitly by a typo'd producer;
# - replication 3 with min.insync.replicas 2: acks=all survives one broker down;
# - the transaction coordinator's own log is replicated the same way, and
#   transaction.max.timeout.ms is 15 minutes, the most MSK allows; Sluice checks its
#   --txn-timeout against it at start-up;
# - transactional ids of instances that are gone expire after 7 days.
resource "aws_msk_configuration" "this" {
  name           = "${var.name}-${replace(var.kafka_version, ".", "-")}"
  kafka_versions = [var.kafka_version]
  description    = "Sluice broker settings (exactly-once, no auto-created topics)"

  server_properties = <<-PROPERTIES
    auto.create.topics.enable=false
    default.replication.factor=3
    min.insync.replicas=2
    num.partitions=6
    unclean.leader.election.enable=false
    log.retention.hours=${var.log_retention_hours}
    offsets.retention.minutes=10080
    transaction.state.log.replication.factor=3
    transaction.state.log.min.isr=2
    transaction.max.timeout.ms=900000
    transactional.id.expiration.ms=604800000
  PROPERTIES

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_msk_cluster" "this" {
  cluster_name           = var.name
  kafka_version          = var.kafka_version
  number_of_broker_nodes = var.broker_count
  enhanced_monitoring    = var.enhanced_monitoring

  broker_node_group_info {
    instance_type   = var.broker_instance_type
    client_subnets  = var.client_subnet_ids
    security_groups = var.security_group_ids

    storage_info {
      ebs_storage_info {
        volume_size = var.ebs_volume_size
      }
    }

    connectivity_info {
      public_access {
        type = "DISABLED"
      }
    }
  }

  configuration_info {
    arn      = aws_msk_configuration.this.arn
    revision = aws_msk_configuration.this.latest_revision
  }

  encryption_info {
    encryption_at_rest_kms_key_arn = aws_kms_key.msk.arn

    encryption_in_transit {
      client_broker = "TLS"
      in_cluster    = true
    }
  }

  client_authentication {
    unauthenticated = false

    sasl {
      iam   = true
      scram = false
    }
  }

  open_monitoring {
    prometheus {
      jmx_exporter {
        enabled_in_broker = true
      }

      node_exporter {
        enabled_in_broker = true
      }
    }
  }

  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.broker.name
      }
    }
  }
}
