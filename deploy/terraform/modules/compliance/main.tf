# Continuous compliance: AWS Config recording every resource with the PCI DSS conformance pack,
# GuardDuty (threat detection, with S3, EKS audit-log and runtime protection), Inspector
# (vulnerability scanning of EC2, ECR images and Lambda), Macie (finding cardholder data where it
# must not be). Findings go to the alarms topic (module monitoring) through EventBridge.

variable "name" { type = string }
variable "config_bucket_kms_key_arn" { type = string }
variable "findings_topic_arn" { type = string }
variable "tags" {
  type    = map(string)
  default = {}
}

data "aws_caller_identity" "current" {}

resource "aws_s3_bucket" "config" {
  bucket = "${var.name}-aws-config"
  tags   = var.tags
}

resource "aws_s3_bucket_server_side_encryption_configuration" "config" {
  bucket = aws_s3_bucket.config.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.config_bucket_kms_key_arn
    }
  }
}

resource "aws_s3_bucket_public_access_block" "config" {
  bucket                  = aws_s3_bucket.config.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_policy" "config" {
  bucket = aws_s3_bucket.config.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Sid = "TLSOnly", Effect = "Deny", Principal = "*", Action = "s3:*", Resource = [aws_s3_bucket.config.arn, "${aws_s3_bucket.config.arn}/*"], Condition = { Bool = { "aws:SecureTransport" = "false" } } },
      { Sid = "ConfigAcl", Effect = "Allow", Principal = { Service = "config.amazonaws.com" }, Action = ["s3:GetBucketAcl", "s3:ListBucket"], Resource = aws_s3_bucket.config.arn },
      { Sid = "ConfigWrite", Effect = "Allow", Principal = { Service = "config.amazonaws.com" }, Action = "s3:PutObject", Resource = "${aws_s3_bucket.config.arn}/AWSLogs/${data.aws_caller_identity.current.account_id}/Config/*", Condition = { StringEquals = { "s3:x-amz-acl" = "bucket-owner-full-control" } } },
    ]
  })
}

resource "aws_iam_service_linked_role" "config" {
  aws_service_name = "config.amazonaws.com"
}

resource "aws_config_configuration_recorder" "this" {
  name     = var.name
  role_arn = aws_iam_service_linked_role.config.arn
  recording_group {
    all_supported                 = true
    include_global_resource_types = true
  }
}

resource "aws_config_delivery_channel" "this" {
  name           = var.name
  s3_bucket_name = aws_s3_bucket.config.id
  sns_topic_arn  = var.findings_topic_arn
  depends_on     = [aws_config_configuration_recorder.this, aws_s3_bucket_policy.config]
}

resource "aws_config_configuration_recorder_status" "this" {
  name       = aws_config_configuration_recorder.this.name
  is_enabled = true
  depends_on = [aws_config_delivery_channel.this]
}

# AWS's "Operational Best Practices for PCI DSS 4.0" conformance pack template (no service-linked
# remediation; findings are reviewed, PCI DSS 10.4).
resource "aws_config_conformance_pack" "pci" {
  name          = "${var.name}-pci-dss"
  template_body = file("${path.module}/pci-dss-conformance-pack.yaml")
  depends_on    = [aws_config_configuration_recorder_status.this]
}

resource "aws_guardduty_detector" "this" {
  enable                       = true
  finding_publishing_frequency = "FIFTEEN_MINUTES"
  tags                         = var.tags
}

resource "aws_guardduty_detector_feature" "this" {
  for_each    = toset(["S3_DATA_EVENTS", "EKS_AUDIT_LOGS", "EBS_MALWARE_PROTECTION", "RDS_LOGIN_EVENTS"])
  detector_id = aws_guardduty_detector.this.id
  name        = each.key
  status      = "ENABLED"
}

resource "aws_guardduty_detector_feature" "runtime" {
  detector_id = aws_guardduty_detector.this.id
  name        = "RUNTIME_MONITORING"
  status      = "ENABLED"
  additional_configuration {
    name   = "EKS_ADDON_MANAGEMENT"
    status = "ENABLED"
  }
}

resource "aws_inspector2_enabler" "this" {
  account_ids    = [data.aws_caller_identity.current.account_id]
  resource_types = ["EC2", "ECR", "LAMBDA"]
}

resource "aws_macie2_account" "this" {
  finding_publishing_frequency = "FIFTEEN_MINUTES"
  status                       = "ENABLED"
}

# High and critical findings of GuardDuty, Inspector and Macie page the on-call (PCI DSS 10.7).
resource "aws_cloudwatch_event_rule" "findings" {
  name = "${var.name}-security-findings"
  event_pattern = jsonencode({
    source      = ["aws.guardduty", "aws.inspector2", "aws.macie"]
    detail-type = ["GuardDuty Finding", "Inspector2 Finding", "Macie Finding"]
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_target" "findings" {
  rule = aws_cloudwatch_event_rule.findings.name
  arn  = var.findings_topic_arn
}

output "guardduty_detector_id" { value = aws_guardduty_detector.this.id }
