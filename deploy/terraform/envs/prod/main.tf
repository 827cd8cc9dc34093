# Tillpoint production, primary region. Every module is wired here; dr.tf adds the warm standby
# region. Apply order and first-time steps: deploy/README.md.

locals {
  name = "tillpoint-prod"
  tags = { Project = "tillpoint", Environment = "prod", DataClassification = "pci" }
  # Which AWS services may use each customer-managed key.
  kms_purposes = {
    eks         = []
    ebs         = ["ec2.amazonaws.com", "autoscaling.amazonaws.com"]
    rds         = ["rds.amazonaws.com"]
    elasticache = ["elasticache.amazonaws.com"]
    secrets     = ["secretsmanager.amazonaws.com"]
    logs        = ["logs.${var.region}.amazonaws.com", "cloudtrail.amazonaws.com", "s3.amazonaws.com", "config.amazonaws.com"]
    sns         = ["sns.amazonaws.com", "cloudwatch.amazonaws.com", "events.amazonaws.com", "config.amazonaws.com"]
    ecr         = ["ecr.amazonaws.com"]
    data        = []
  }
}

data "aws_caller_identity" "current" {}

locals {
  # EC2 Auto Scaling launches the nodes' encrypted volumes as its service-linked role.
  kms_role_principals = {
    ebs = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"]
  }
}

module "kms" {
  source          = "../../modules/kms"
  name            = local.name
  purposes        = local.kms_purposes
  role_principals = local.kms_role_principals
  tags            = local.tags
}

module "network" {
  source               = "../../modules/network"
  name                 = local.name
  cidr                 = var.vpc_cidr
  azs                  = var.azs
  flow_log_kms_key_arn = module.kms.key_arns["logs"]
  tags                 = local.tags
}

module "eks" {
  source              = "../../modules/eks"
  name                = local.name
  vpc_id              = module.network.vpc_id
  private_subnet_ids  = module.network.private_subnet_ids
  secrets_kms_key_arn = module.kms.key_arns["eks"]
  ebs_kms_key_arn     = module.kms.key_arns["ebs"]
  logs_kms_key_arn    = module.kms.key_arns["logs"]
  admin_cidrs         = var.admin_cidrs
  secrets_prefix_arn  = module.secrets.prefix_arn
  data_kms_key_arn    = module.kms.key_arns["data"]
  audit_bucket_arn    = module.audit_logging.audit_bucket_arn
  tags                = local.tags
}

resource "aws_iam_role" "rds_monitoring" {
  name = "${local.name}-rds-monitoring"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "monitoring.rds.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

module "rds" {
  source              = "../../modules/rds"
  providers           = { aws = aws, aws.dr = aws.dr }
  name                = local.name
  vpc_id              = module.network.vpc_id
  database_subnet_ids = module.network.database_subnet_ids
  client_cidrs        = module.network.private_subnet_cidrs
  kms_key_arn         = module.kms.key_arns["rds"]
  master_password     = module.secrets.database_password
  dr_kms_key_arn      = module.kms_dr.key_arns["rds"]
  monitoring_role_arn = aws_iam_role.rds_monitoring.arn
  tags                = local.tags
}

module "elasticache" {
  source              = "../../modules/elasticache"
  name                = local.name
  vpc_id              = module.network.vpc_id
  database_subnet_ids = module.network.database_subnet_ids
  client_cidrs        = module.network.private_subnet_cidrs
  kms_key_arn         = module.kms.key_arns["elasticache"]
  auth_token          = module.secrets.redis_auth_token
  tags                = local.tags
}

module "secrets" {
  source      = "../../modules/secrets"
  kms_key_arn = module.kms.key_arns["secrets"]
  database = {
    host     = module.rds.endpoint
    port     = module.rds.port
    dbname   = "tillpoint"
    username = "tillpoint"
  }
  rotation_subnet_ids         = module.network.private_subnet_ids
  rotation_security_group_ids = [module.eks.cluster_security_group_id]
  replica_region              = var.dr_region
  replica_kms_key_arn         = module.kms_dr.key_arns["secrets"]
  tags                        = local.tags
}

module "iot" {
  source                = "../../modules/iot"
  name                  = local.name
  terminal_ca_pem       = var.terminal_ca_pem
  verification_cert_pem = var.terminal_ca_verification_pem
  gateway_cert_pem      = var.gateway_cert_pem
  tags                  = local.tags
}

module "waf" {
  source           = "../../modules/waf"
  name             = local.name
  logs_kms_key_arn = module.kms.key_arns["logs"]
  tags             = local.tags
}

module "acm" {
  source      = "../../modules/acm"
  domain_name = var.api_domain
  zone_id     = var.route53_zone_id
  tags        = local.tags
}

module "audit_logging" {
  source              = "../../modules/audit_logging"
  name                = local.name
  kms_key_arn         = module.kms.key_arns["logs"]
  replica_bucket_arn  = aws_s3_bucket.dr_logs.arn
  replica_kms_key_arn = module.kms_dr.key_arns["logs"]
  tags                = local.tags
}

module "compliance" {
  source                    = "../../modules/compliance"
  name                      = local.name
  config_bucket_kms_key_arn = module.kms.key_arns["logs"]
  findings_topic_arn        = module.monitoring.alarm_topic_arn
  tags                      = local.tags
}

module "monitoring" {
  source                           = "../../modules/monitoring"
  name                             = local.name
  kms_key_arn                      = module.kms.key_arns["sns"]
  alarm_emails                     = var.alarm_emails
  cloudtrail_log_group_name        = module.audit_logging.cloudtrail_log_group_name
  rds_instance_id                  = module.rds.identifier
  elasticache_replication_group_id = local.name
  web_acl_name                     = local.name
  tags                             = local.tags
}

module "ecr" {
  source         = "../../modules/ecr"
  name           = "tillpoint"
  kms_key_arn    = module.kms.key_arns["ecr"]
  replica_region = var.dr_region
  tags           = local.tags
}
