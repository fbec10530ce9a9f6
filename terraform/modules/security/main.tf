# Least-privilege security groups. Only the ALB listeners face the internet; each Sluice
# service has its own group, so MSK and the ALB name exactly who may connect, and a
# Prometheus scraper group is the only one that may read the brokers' exporters and the
# services' /metrics. Rules are separate resources (one per source), never inline.

locals {
  services = toset(["ingest", "process", "sink"])
  # Everything that runs in the private subnets and talks to MSK: the services and,
  # with connect_enabled, the Kafka Connect workers.
  clients = var.connect_enabled ? setunion(local.services, ["connect"]) : local.services
  # MSK open monitoring: 11001 is the JMX exporter, 11002 the node exporter.
  exporter_ports = { jmx = 11001, node = 11002 }
}

resource "aws_security_group" "alb" {
  #checkov:skip=CKV2_AWS_5:Is attached to the ALB by modules/alb (checkov does not follow module outputs).
  name        = "${var.name}-alb"
  description = "Public ALB in front of sluice ingest"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-alb" }
}

resource "aws_security_group" "service" {
  #checkov:skip=CKV2_AWS_5:Is attached to the ECS services by modules/ecs and modules/connect (checkov does not follow module outputs).
  for_each = local.clients

  name        = "${var.name}-${each.key}"
  description = "Sluice ${each.key} tasks"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-${each.key}" }
}

resource "aws_security_group" "msk" {
  #checkov:skip=CKV2_AWS_5:Is attached to the MSK brokers by modules/msk (checkov does not follow module outputs).
  name        = "${var.name}-msk"
  description = "MSK brokers: TLS + IAM clients and the Prometheus scraper only"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-msk" }
}

resource "aws_security_group" "prometheus" {
  #checkov:skip=CKV2_AWS_5:Is attached by the operator to a Prometheus scraper outside this configuration; exported as an output.
  name        = "${var.name}-prometheus"
  description = "Attach to a Prometheus scraper (e.g. an ADOT collector or AMP scraper) to read MSK exporters and service metrics"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-prometheus" }
}

# --- ALB: HTTP and HTTPS in from clients, only the ingest tasks out.

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each = toset(var.alb_ingress_cidr_blocks)

  security_group_id = aws_security_group.alb.id
  description       = "HTTPS listener"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  #checkov:skip=CKV_AWS_260:Port 80 only answers a 301 redirect to HTTPS (alb module); no request is forwarded over plain HTTP.
  for_each = toset(var.alb_ingress_cidr_blocks)

  security_group_id = aws_security_group.alb.id
  description       = "HTTP listener (redirects to HTTPS)"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "alb_to_ingest" {
  security_group_id            = aws_security_group.alb.id
  description                  = "Forward to ingest tasks"
  ip_protocol                  = "tcp"
  from_port                    = var.service_port
  to_port                      = var.service_port
  referenced_security_group_id = aws_security_group.service["ingest"].id
}

# --- Services: ingest from the ALB; /metrics from the scraper; out to MSK, the VPC
# endpoints, S3 (image layers) and the external HTTPS destinations.

resource "aws_vpc_security_group_ingress_rule" "ingest_from_alb" {
  security_group_id            = aws_security_group.service["ingest"].id
  description                  = "API and health checks from the ALB"
  ip_protocol                  = "tcp"
  from_port                    = var.service_port
  to_port                      = var.service_port
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_ingress_rule" "service_from_prometheus" {
  for_each = local.services

  security_group_id            = aws_security_group.service[each.key].id
  description                  = "Prometheus scrapes /metrics"
  ip_protocol                  = "tcp"
  from_port                    = var.service_port
  to_port                      = var.service_port
  referenced_security_group_id = aws_security_group.prometheus.id
}

resource "aws_vpc_security_group_egress_rule" "service_to_msk" {
  for_each = local.clients

  security_group_id            = aws_security_group.service[each.key].id
  description                  = "Kafka over TLS with IAM auth"
  ip_protocol                  = "tcp"
  from_port                    = var.msk_iam_port
  to_port                      = var.msk_iam_port
  referenced_security_group_id = aws_security_group.msk.id
}

resource "aws_vpc_security_group_egress_rule" "service_to_endpoints" {
  for_each = local.clients

  security_group_id            = aws_security_group.service[each.key].id
  description                  = "Interface VPC endpoints (ECR, logs, Secrets Manager, STS)"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = var.endpoints_security_group_id
}

resource "aws_vpc_security_group_egress_rule" "service_to_s3" {
  for_each = local.clients

  security_group_id = aws_security_group.service[each.key].id
  description       = "S3 gateway endpoint (ECR image layers)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = var.s3_prefix_list_id
}

locals {
  service_external = {
    for pair in setproduct(tolist(local.clients), var.external_https_cidr_blocks) :
    "${pair[0]}|${pair[1]}" => { service = pair[0], cidr = pair[1] }
  }
}

resource "aws_vpc_security_group_egress_rule" "service_external_https" {
  for_each = local.service_external

  security_group_id = aws_security_group.service[each.value.service].id
  description       = "HTTPS to the schema registry and Snowflake through NAT"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value.cidr
}

# --- MSK: clients on the IAM port, the scraper on the exporter ports; no egress rules
# (security groups are stateful, and brokers open no connections into the VPC).

resource "aws_vpc_security_group_ingress_rule" "msk_from_service" {
  for_each = local.clients

  security_group_id            = aws_security_group.msk.id
  description                  = "Kafka TLS + IAM from ${each.key}"
  ip_protocol                  = "tcp"
  from_port                    = var.msk_iam_port
  to_port                      = var.msk_iam_port
  referenced_security_group_id = aws_security_group.service[each.key].id
}

resource "aws_vpc_security_group_ingress_rule" "msk_exporters" {
  for_each = local.exporter_ports

  security_group_id            = aws_security_group.msk.id
  description                  = "Open monitoring: ${each.key} exporter"
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  referenced_security_group_id = aws_security_group.prometheus.id
}

# --- Prometheus scraper: out to the exporters and the services' /metrics only.

resource "aws_vpc_security_group_egress_rule" "prometheus_to_msk" {
  for_each = local.exporter_ports

  security_group_id            = aws_security_group.prometheus.id
  description                  = "Scrape the MSK ${each.key} exporter"
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
  referenced_security_group_id = aws_security_group.msk.id
}

resource "aws_vpc_security_group_egress_rule" "prometheus_to_service" {
  for_each = local.services

  security_group_id            = aws_security_group.prometheus.id
  description                  = "Scrape sluice ${each.key} /metrics"
  ip_protocol                  = "tcp"
  from_port                    = var.service_port
  to_port                      = var.service_port
  referenced_security_group_id = aws_security_group.service[each.key].id
}

# --- Kafka Connect workers forward REST requests to the leader (connect_enabled only).

resource "aws_vpc_security_group_ingress_rule" "connect_rest" {
  count = var.connect_enabled ? 1 : 0

  security_group_id            = aws_security_group.service["connect"].id
  description                  = "Kafka Connect REST API between workers"
  ip_protocol                  = "tcp"
  from_port                    = var.connect_rest_port
  to_port                      = var.connect_rest_port
  referenced_security_group_id = aws_security_group.service["connect"].id
}

resource "aws_vpc_security_group_egress_rule" "connect_rest" {
  count = var.connect_enabled ? 1 : 0

  security_group_id            = aws_security_group.service["connect"].id
  description                  = "Kafka Connect REST API between workers"
  ip_protocol                  = "tcp"
  from_port                    = var.connect_rest_port
  to_port                      = var.connect_rest_port
  referenced_security_group_id = aws_security_group.service["connect"].id
}
