# What the Kubernetes overlay needs (deploy/k8s/overlays/prod): deploy/README.md maps each.
output "eks_cluster_name" { value = module.eks.cluster_name }
output "external_secrets_role_arn" { value = module.eks.irsa_role_arns["external-secrets"] }
output "cluster_autoscaler_role_arn" { value = module.eks.irsa_role_arns["cluster-autoscaler"] }
# For the eks.amazonaws.com/role-arn annotations of the app's ServiceAccounts (deploy/k8s overlays).
output "app_role_arns" { value = { for k in ["api", "worker", "terminal-gateway"] : k => module.eks.irsa_role_arns[k] } }
output "ecr_repository_url" { value = module.ecr.repository_url }
output "rds_endpoint" { value = module.rds.endpoint }
output "redis_endpoint" { value = module.elasticache.primary_endpoint }
output "mqtt_url" { value = module.iot.mqtt_url }
output "certificate_arn" { value = module.acm.certificate_arn }
output "web_acl_arn" { value = module.waf.web_acl_arn }
output "kms_data_key_alias" { value = module.kms.aliases["data"] }
output "audit_bucket" { value = module.audit_logging.audit_bucket }
output "alarm_topic_arn" { value = module.monitoring.alarm_topic_arn }
output "database_subnet_cidrs" { value = module.network.database_subnet_cidrs }
output "dr_eks_cluster_name" { value = module.eks_dr.cluster_name }
output "dr_database_replica" { value = aws_db_instance.dr_replica.identifier }
