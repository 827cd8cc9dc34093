# Customer-managed KMS keys, one per purpose, rotated yearly by KMS (PCI DSS 3.6, 3.7). Each key's
# policy lets the account administer it and the named AWS services use it.

variable "name" { type = string }
variable "purposes" {
  description = "purpose => AWS service principals that may use the key"
  type        = map(list(string))
}
variable "role_principals" {
  description = "purpose => IAM roles (ARNs) that may use the key, e.g. the Auto Scaling service-linked role for EBS"
  type        = map(list(string))
  default     = {}
}
variable "deletion_window_in_days" {
  type    = number
  default = 30
}
variable "tags" {
  type    = map(string)
  default = {}
}

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

resource "aws_kms_key" "this" {
  for_each                = var.purposes
  description             = "${var.name} ${each.key}"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = var.deletion_window_in_days
  multi_region            = false
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat([
      {
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      }], length(each.value) == 0 ? [] : [
      {
        Sid       = "ServicesUse"
        Effect    = "Allow"
        Principal = { Service = each.value }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey", "kms:CreateGrant"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id } }
      }], length(lookup(var.role_principals, each.key, [])) == 0 ? [] : [
      {
        Sid       = "RolesUse"
        Effect    = "Allow"
        Principal = { AWS = var.role_principals[each.key] }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey", "kms:CreateGrant"]
        Resource  = "*"
      }
    ])
  })
  tags = merge(var.tags, { Purpose = each.key })
}

resource "aws_kms_alias" "this" {
  for_each      = var.purposes
  name          = "alias/${var.name}-${each.key}"
  target_key_id = aws_kms_key.this[each.key].key_id
}

output "key_arns" { value = { for k, v in aws_kms_key.this : k => v.arn } }
output "key_ids" { value = { for k, v in aws_kms_key.this : k => v.key_id } }
output "aliases" { value = { for k, v in aws_kms_alias.this : k => v.name } }
