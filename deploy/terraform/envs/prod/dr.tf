# Warm standby in the DR region (RTO 1 hour, RPO 5 minutes; runbook: deploy/README.md,
# "Disaster recovery"). Always running: the network, a small EKS cluster (one node per zone),
# a cross-region read replica of the database (continuous; the RPO), the replicated secrets,
# images and log archives. On failover: promote the replica, scale the cluster, point DNS.

module "kms_dr" {
  source          = "../../modules/kms"
  providers       = { aws = aws.dr }
  name            = "${local.name}-dr"
  purposes        = local.kms_purposes
  role_principals = local.kms_role_principals
  tags            = local.tags
}

module "network_dr" {
  source               = "../../modules/network"
  providers            = { aws = aws.dr }
  name                 = "${local.name}-dr"
  cidr                 = var.dr_vpc_cidr
  azs                  = var.dr_azs
  flow_log_kms_key_arn = module.kms_dr.key_arns["logs"]
  tags                 = local.tags
}

module "eks_dr" {
  source              = "../../modules/eks"
  providers           = { aws = aws.dr }
  name                = "${local.name}-dr"
  vpc_id              = module.network_dr.vpc_id
  private_subnet_ids  = module.network_dr.private_subnet_ids
  secrets_kms_key_arn = module.kms_dr.key_arns["eks"]
  ebs_kms_key_arn     = module.kms_dr.key_arns["ebs"]
  logs_kms_key_arn    = module.kms_dr.key_arns["logs"]
  admin_cidrs         = var.admin_cidrs
  secrets_prefix_arn  = module.secrets.prefix_arn
  # After a failover the app uses the standby region's data key and exports the audit trail to
  # the replica bucket (Object Lock in compliance mode there too).
  data_kms_key_arn = module.kms_dr.key_arns["data"]
  audit_bucket_arn = aws_s3_bucket.dr_logs.arn
  nodes_per_zone = {
    min     = 1
    desired = 1
    max     = 6
  }
  tags = local.tags
}

resource "aws_db_subnet_group" "dr" {
  provider   = aws.dr
  name       = "${local.name}-dr"
  subnet_ids = module.network_dr.database_subnet_ids
}

resource "aws_security_group" "dr_postgres" {
  provider    = aws.dr
  name        = "${local.name}-dr-postgres"
  description = "PostgreSQL from the DR EKS private subnets only"
  vpc_id      = module.network_dr.vpc_id
  ingress {
    description = "PostgreSQL from the pods"
    from_port   = 5432
    to_port     = 5432
    protocol    = "tcp"
    cidr_blocks = module.network_dr.private_subnet_cidrs
  }
}

# The standby database: a cross-region read replica, encrypted with the DR region's key.
resource "aws_db_instance" "dr_replica" {
  provider                        = aws.dr
  identifier                      = "${local.name}-dr"
  replicate_source_db             = module.rds.arn
  instance_class                  = "db.r7g.large"
  storage_encrypted               = true
  kms_key_id                      = module.kms_dr.key_arns["rds"]
  db_subnet_group_name            = aws_db_subnet_group.dr.name
  vpc_security_group_ids          = [aws_security_group.dr_postgres.id]
  publicly_accessible             = false
  deletion_protection             = true
  skip_final_snapshot             = false
  final_snapshot_identifier       = "${local.name}-dr-final"
  backup_retention_period         = 7
  multi_az                        = false
  performance_insights_enabled    = true
  performance_insights_kms_key_id = module.kms_dr.key_arns["rds"]
  enabled_cloudwatch_logs_exports = ["postgresql"]
  tags                            = local.tags
}

# The DR copy of CloudTrail and the audit archive (S3 replication from module audit_logging).
resource "aws_s3_bucket" "dr_logs" {
  provider            = aws.dr
  bucket              = "${local.name}-dr-logs"
  object_lock_enabled = true
  force_destroy       = false
}

resource "aws_s3_bucket_versioning" "dr_logs" {
  provider = aws.dr
  bucket   = aws_s3_bucket.dr_logs.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_object_lock_configuration" "dr_logs" {
  provider = aws.dr
  bucket   = aws_s3_bucket.dr_logs.id
  rule {
    default_retention {
      mode = "COMPLIANCE"
      days = 400
    }
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "dr_logs" {
  provider = aws.dr
  bucket   = aws_s3_bucket.dr_logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = module.kms_dr.key_arns["logs"]
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "dr_logs" {
  provider                = aws.dr
  bucket                  = aws_s3_bucket.dr_logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# Health check and failover record: DNS moves to the standby's load balancer when the primary
# fails its health check (the standby ALB exists once the dr overlay is applied there).
resource "aws_route53_health_check" "primary" {
  fqdn              = var.api_domain
  port              = 443
  type              = "HTTPS"
  resource_path     = "/healthz"
  failure_threshold = 3
  request_interval  = 30
  tags              = local.tags
}
