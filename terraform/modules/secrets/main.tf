# The secrets are created empty: their values never pass through Terraform, so they are
# not in any state file or plan. Put them in once after the first apply:
#
#   aws secretsmanager put-secret-value --secret-id <name>/jwt-hs256-secret \
#     --secret-string "$(openssl rand -base64 48)"
#   aws secretsmanager put-secret-value --secret-id <name>/snowflake \
#     --secret-string "$(jq -n --rawfile k rsa_key.p8 --arg p "$PASSPHRASE" \
#       '{private_key: $k, private_key_passphrase: $p}')"
#
# With connect_enabled, a third secret holds the Kafka Connect Snowflake connector's key
# pair, in the same JSON shape; the connector takes private_key as
# snowflake.private.key, which wants the PKCS#8 key without its BEGIN and END lines:
#
#   aws secretsmanager put-secret-value --secret-id <name>/snowflake-connect \
#     --secret-string "$(jq -n --arg k "$(grep -v -- ----- rsa_key.p8 | tr -d '\n')" \
#       --arg p "$PASSPHRASE" '{private_key: $k, private_key_passphrase: $p}')"
#
# ECS injects them into the containers by ARN (and JSON key, for the Snowflake secrets).

resource "aws_secretsmanager_secret" "jwt" {
  #checkov:skip=CKV2_AWS_57:The HS256 secret is shared with the token issuer; rotating it is a coordinated change of both sides, not a Lambda rotation.
  name                    = "${var.name}/jwt-hs256-secret"
  description             = "Sluice ingest: HS256 secret (32 bytes or more) that verifies bearer tokens (SLUICE_JWT_HS256_SECRET)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.recovery_window_in_days
}

resource "aws_secretsmanager_secret" "snowflake" {
  #checkov:skip=CKV2_AWS_57:A Snowflake key pair is rotated by registering a second public key on the user (RSA_PUBLIC_KEY_2) first; Secrets Manager cannot do that step.
  name                    = "${var.name}/snowflake"
  description             = "Sluice sink: JSON {private_key (PKCS#8 PEM), private_key_passphrase} of the Snowflake key-pair user"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.recovery_window_in_days
}

resource "aws_secretsmanager_secret" "snowflake_connect" {
  #checkov:skip=CKV2_AWS_57:A Snowflake key pair is rotated by registering a second public key on the user (RSA_PUBLIC_KEY_2) first; Secrets Manager cannot do that step.
  count = var.connect_enabled ? 1 : 0

  name                    = "${var.name}/snowflake-connect"
  description             = "Kafka Connect Snowflake connector: JSON {private_key (PKCS#8 body without BEGIN/END lines), private_key_passphrase} of its key-pair user"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.recovery_window_in_days
}
