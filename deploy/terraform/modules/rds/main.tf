# PostgreSQL on RDS, Multi-AZ, encrypted with a customer-managed key, TLS forced
# (rds.force_ssl), deletion protection, 35 days of point-in-time backups, and automated backups
# replicated to the disaster-recovery region (aws_db_instance_automated_backups_replication).
# The password is in Secrets Manager (module secrets: tillpoint/DATABASE, in the JSON layout of
# AWS's RDS rotation function, which rotates it); the app re-reads it without a restart.

variable "name" { type = string }
variable "vpc_id" { type = string }
variable "database_subnet_ids" { type = list(string) }
variable "client_cidrs" {
  description = "The private (EKS) subnets: the only sources allowed to connect."
  type        = list(string)
}
variable "kms_key_arn" { type = string }
variable "master_password" {
  type      = string
  sensitive = true
}
variable "dr_kms_key_arn" {
  description = "A key in the DR region that encrypts the replicated backups."
  type        = string
}
variable "instance_class" {
  type    = string
  default = "db.r7g.large"
}
variable "engine_version" {
  type    = string
  default = "16.6"
}
variable "allocated_storage" {
  type    = number
  default = 200
}
variable "backup_retention_days" {
  type    = number
  default = 35
}
variable "monitoring_role_arn" { type = string }
variable "tags" {
  type    = map(string)
  default = {}
}

resource "aws_db_subnet_group" "this" {
  name       = var.name
  subnet_ids = var.database_subnet_ids
  tags       = var.tags
}

resource "aws_security_group" "this" {
  name        = "${var.name}-postgres"
  description = "PostgreSQL from the EKS private subnets only"
  vpc_id      = var.vpc_id
  ingress {
    description = "PostgreSQL from the pods"
    from_port   = 5432
    to_port     = 5432
    protocol    = "tcp"
    cidr_blocks = var.client_cidrs
  }
  tags = var.tags
}

resource "aws_db_parameter_group" "this" {
  name   = "${var.name}-pg16"
  family = "postgres16"
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
  parameter {
    name  = "ssl_min_protocol_version"
    value = "TLSv1.2"
  }
  parameter {
    name  = "log_connections"
    value = "1"
  }
  parameter {
    name  = "log_disconnections"
    value = "1"
  }
  tags = var.tags
}

resource "aws_db_instance" "this" {
  identifier                          = var.name
  engine                              = "postgres"
  engine_version                      = var.engine_version
  instance_class                      = var.instance_class
  allocated_storage                   = var.allocated_storage
  max_allocated_storage               = var.allocated_storage * 4
  storage_type                        = "gp3"
  storage_encrypted                   = true
  kms_key_id                          = var.kms_key_arn
  db_name                             = "tillpoint"
  username                            = "tillpoint"
  password                            = var.master_password
  multi_az                            = true
  db_subnet_group_name                = aws_db_subnet_group.this.name
  vpc_security_group_ids              = [aws_security_group.this.id]
  parameter_group_name                = aws_db_parameter_group.this.name
  publicly_accessible                 = false
  deletion_protection                 = true
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "${var.name}-final"
  backup_retention_period             = var.backup_retention_days
  backup_window                       = "20:00-21:00"
  maintenance_window                  = "sun:21:30-sun:22:30"
  copy_tags_to_snapshot               = true
  auto_minor_version_upgrade          = true
  iam_database_authentication_enabled = true
  performance_insights_enabled        = true
  performance_insights_kms_key_id     = var.kms_key_arn
  monitoring_interval                 = 30
  monitoring_role_arn                 = var.monitoring_role_arn
  enabled_cloudwatch_logs_exports     = ["postgresql", "upgrade"]
  ca_cert_identifier                  = "rds-ca-rsa2048-g1"
  apply_immediately                   = false
  tags                                = var.tags
  lifecycle {
    # The rotation function changes the password after creation.
    ignore_changes = [password]
  }
}

# Cross-region copies of the automated backups (point-in-time restore in the DR region).
resource "aws_db_instance_automated_backups_replication" "dr" {
  provider               = aws.dr
  source_db_instance_arn = aws_db_instance.this.arn
  kms_key_id             = var.dr_kms_key_arn
  retention_period       = 14
}

output "endpoint" { value = aws_db_instance.this.address }
output "port" { value = aws_db_instance.this.port }
output "arn" { value = aws_db_instance.this.arn }
output "identifier" { value = aws_db_instance.this.identifier }
output "security_group_id" { value = aws_security_group.this.id }
