# Redis (ElastiCache, the API's shared rate limits): a replication group over the zones with
# automatic failover, TLS in transit, an AUTH token from Secrets Manager, encrypted at rest with
# a customer-managed key.

variable "name" { type = string }
variable "vpc_id" { type = string }
variable "database_subnet_ids" { type = list(string) }
variable "client_cidrs" { type = list(string) }
variable "kms_key_arn" { type = string }
variable "auth_token" {
  description = "From the Secrets Manager secret tillpoint/REDIS_AUTH_TOKEN (module secrets)."
  type        = string
  sensitive   = true
}
variable "node_type" {
  type    = string
  default = "cache.r7g.large"
}
variable "tags" {
  type    = map(string)
  default = {}
}

resource "aws_elasticache_subnet_group" "this" {
  name       = var.name
  subnet_ids = var.database_subnet_ids
}

resource "aws_security_group" "this" {
  name        = "${var.name}-redis"
  description = "Redis from the EKS private subnets only"
  vpc_id      = var.vpc_id
  ingress {
    description = "Redis TLS from the pods"
    from_port   = 6379
    to_port     = 6379
    protocol    = "tcp"
    cidr_blocks = var.client_cidrs
  }
  tags = var.tags
}

resource "aws_elasticache_replication_group" "this" {
  replication_group_id       = var.name
  description                = "Tillpoint shared rate limits"
  engine                     = "redis"
  engine_version             = "7.1"
  node_type                  = var.node_type
  num_cache_clusters         = 3
  port                       = 6379
  subnet_group_name          = aws_elasticache_subnet_group.this.name
  security_group_ids         = [aws_security_group.this.id]
  automatic_failover_enabled = true
  multi_az_enabled           = true
  transit_encryption_enabled = true
  transit_encryption_mode    = "required"
  at_rest_encryption_enabled = true
  kms_key_id                 = var.kms_key_arn
  auth_token                 = var.auth_token
  auth_token_update_strategy = "ROTATE"
  snapshot_retention_limit   = 7
  apply_immediately          = false
  tags                       = var.tags
}

output "primary_endpoint" { value = aws_elasticache_replication_group.this.primary_endpoint_address }
