# The application's secrets in Secrets Manager (names under tillpoint/, read by the External
# Secrets Operator: deploy/k8s/base/externalsecrets.yaml), encrypted with a customer-managed key
# and replicated to the DR region.
#
# Rotation: automatic where the application takes a new value without losing data —
#   DATABASE               every 30 days by AWS's RDS PostgreSQL single-user rotation function;
#                          the app re-reads DATABASE_PASSWORD_SECRET (src/platform/secrets.ts).
# Rotated by procedure, never automatically, because a new value must be introduced by the app:
#   AUDIT_SIGNING_KEY      old heads must stay verifiable (AUDIT_TRUSTED_PUBLIC_KEYS)
#   MFA_ENCRYPTION_KEY     seals stored TOTP secrets; REWARDS_CUSTOMER_KEY names customers
#   BANK_PRIMARY_SECRET    agreed with the bank (the app accepts the previous value meanwhile)
#   API_TLS, MQTT_GATEWAY_CLIENT  certificates, renewed before expiry
# deploy/README.md, "Secrets and rotation", has each procedure.

variable "prefix" {
  type    = string
  default = "tillpoint/"
}
variable "kms_key_arn" { type = string }
variable "database" {
  description = "Where the database is: host, port, dbname, username (the password is generated here)."
  type        = object({ host = string, port = number, dbname = string, username = string })
}
variable "database_rotation_days" {
  type    = number
  default = 30
}
variable "rotation_subnet_ids" { type = list(string) }
variable "rotation_security_group_ids" { type = list(string) }
variable "replica_region" {
  description = "The DR region: every secret is replicated there."
  type        = string
}
variable "replica_kms_key_arn" { type = string }
variable "tags" {
  type    = map(string)
  default = {}
}

data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  names = ["DATABASE", "AUDIT_SIGNING_KEY", "MFA_ENCRYPTION_KEY", "REWARDS_CUSTOMER_KEY", "REDIS_AUTH_TOKEN", "REDIS_URL", "BANK_PRIMARY_SECRET", "API_TLS", "MQTT_GATEWAY_CLIENT"]
}

resource "aws_secretsmanager_secret" "this" {
  for_each                = toset(local.names)
  name                    = "${var.prefix}${each.key}"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 30
  replica {
    region     = var.replica_region
    kms_key_id = var.replica_kms_key_arn
  }
  tags = var.tags
}

resource "random_password" "database" {
  length           = 40
  override_special = "!#%*()-_=+[]{}<>:?"
}

resource "random_password" "redis" {
  length  = 64
  special = false
}

resource "random_bytes" "key" {
  for_each = toset(["AUDIT_SIGNING_KEY", "MFA_ENCRYPTION_KEY", "REWARDS_CUSTOMER_KEY"])
  length   = 32
}

# First values only: rotation and procedures change them afterwards.
resource "aws_secretsmanager_secret_version" "database" {
  secret_id     = aws_secretsmanager_secret.this["DATABASE"].id
  secret_string = jsonencode(merge(var.database, { engine = "postgres", password = random_password.database.result }))
  lifecycle {
    ignore_changes = [secret_string]
  }
}

resource "aws_secretsmanager_secret_version" "key" {
  for_each      = random_bytes.key
  secret_id     = aws_secretsmanager_secret.this[each.key].id
  secret_string = each.value.base64
  lifecycle {
    ignore_changes = [secret_string]
  }
}

resource "aws_secretsmanager_secret_version" "redis_auth" {
  secret_id     = aws_secretsmanager_secret.this["REDIS_AUTH_TOKEN"].id
  secret_string = random_password.redis.result
  lifecycle {
    ignore_changes = [secret_string]
  }
}

# AWS's published rotation function for PostgreSQL (Serverless Application Repository).
resource "aws_serverlessapplicationrepository_cloudformation_stack" "rotation" {
  name           = "tillpoint-postgres-rotation"
  application_id = "arn:${data.aws_partition.current.partition}:serverlessrepo:us-east-1:297356227824:applications/SecretsManagerRDSPostgreSQLRotationSingleUser"
  capabilities   = ["CAPABILITY_IAM", "CAPABILITY_RESOURCE_POLICY"]
  parameters = {
    endpoint            = "https://secretsmanager.${data.aws_region.current.name}.amazonaws.com"
    functionName        = "tillpoint-postgres-rotation"
    kmsKeyArn           = var.kms_key_arn
    vpcSubnetIds        = join(",", var.rotation_subnet_ids)
    vpcSecurityGroupIds = join(",", var.rotation_security_group_ids)
  }
}

resource "aws_secretsmanager_secret_rotation" "database" {
  secret_id           = aws_secretsmanager_secret.this["DATABASE"].id
  rotation_lambda_arn = aws_serverlessapplicationrepository_cloudformation_stack.rotation.outputs["RotationLambdaARN"]
  rotation_rules {
    automatically_after_days = var.database_rotation_days
  }
  depends_on = [aws_secretsmanager_secret_version.database]
}

output "secret_arns" { value = { for k, v in aws_secretsmanager_secret.this : k => v.arn } }
output "prefix_arn" { value = "arn:${data.aws_partition.current.partition}:secretsmanager:*:*:secret:${var.prefix}*" }
output "database_password" {
  value     = random_password.database.result
  sensitive = true
}
output "redis_auth_token" {
  value     = random_password.redis.result
  sensitive = true
}
