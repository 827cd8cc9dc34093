# EKS: private API endpoint, Kubernetes secrets envelope-encrypted with a customer-managed KMS
# key, control-plane logs, managed node groups (one per zone, so the cluster autoscaler scales
# zones evenly) with IMDSv2 and encrypted volumes, and IRSA (an OIDC provider; roles for the
# External Secrets Operator, the cluster autoscaler and the application's three service accounts).

variable "name" { type = string }
variable "kubernetes_version" {
  type    = string
  default = "1.33"
}
variable "vpc_id" { type = string }
variable "private_subnet_ids" { type = list(string) }
variable "secrets_kms_key_arn" { type = string }
variable "ebs_kms_key_arn" { type = string }
variable "logs_kms_key_arn" { type = string }
variable "admin_cidrs" {
  description = "Where kubectl may reach the API from (the VPN); the endpoint is private otherwise."
  type        = list(string)
  default     = []
}
variable "node_instance_types" {
  type    = list(string)
  default = ["m7i.large"]
}
variable "nodes_per_zone" {
  type = object({ min = number, desired = number, max = number })
  default = {
    min     = 1
    desired = 2
    max     = 6
  }
}
variable "secrets_prefix_arn" {
  description = "ARN pattern of the secrets External Secrets may read (arn:...:secret:tillpoint/*)."
  type        = string
}
variable "data_kms_key_arn" {
  description = "The application's data key (KMS_PROVIDER=aws-kms): the app's roles may use it."
  type        = string
}
variable "audit_bucket_arn" {
  description = "The audit WORM bucket (AUDIT_EXPORT=s3); objects are encrypted with logs_kms_key_arn."
  type        = string
}
variable "namespace" {
  type    = string
  default = "tillpoint"
}
variable "tags" {
  type    = map(string)
  default = {}
}

resource "aws_cloudwatch_log_group" "cluster" {
  name              = "/aws/eks/${var.name}/cluster"
  retention_in_days = 365
  kms_key_id        = var.logs_kms_key_arn
  tags              = var.tags
}

resource "aws_iam_role" "cluster" {
  name = "${var.name}-eks-cluster"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "eks.amazonaws.com" }, Action = ["sts:AssumeRole", "sts:TagSession"] }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "cluster" {
  role       = aws_iam_role.cluster.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"
}

# Envelope encryption of Kubernetes secrets: the control plane uses the key as the cluster role.
resource "aws_iam_role_policy" "cluster_kms" {
  role = aws_iam_role.cluster.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey", "kms:CreateGrant"], Resource = var.secrets_kms_key_arn }]
  })
}

resource "aws_eks_cluster" "this" {
  name     = var.name
  version  = var.kubernetes_version
  role_arn = aws_iam_role.cluster.arn

  vpc_config {
    subnet_ids              = var.private_subnet_ids
    endpoint_private_access = true
    endpoint_public_access  = length(var.admin_cidrs) > 0
    public_access_cidrs     = length(var.admin_cidrs) > 0 ? var.admin_cidrs : null
  }

  encryption_config {
    resources = ["secrets"]
    provider {
      key_arn = var.secrets_kms_key_arn
    }
  }

  access_config {
    authentication_mode = "API"
  }

  enabled_cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
  depends_on                = [aws_iam_role_policy_attachment.cluster, aws_iam_role_policy.cluster_kms, aws_cloudwatch_log_group.cluster]
  tags                      = var.tags
}

resource "aws_iam_role" "node" {
  name = "${var.name}-eks-node"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "ec2.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each   = toset(["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly", "AmazonSSMManagedInstanceCore"])
  role       = aws_iam_role.node.name
  policy_arn = "arn:aws:iam::aws:policy/${each.key}"
}

resource "aws_launch_template" "node" {
  name_prefix = "${var.name}-node-"
  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    http_endpoint               = "enabled"
  }
  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size = 50
      volume_type = "gp3"
      encrypted   = true
      kms_key_id  = var.ebs_kms_key_arn
    }
  }
  tag_specifications {
    resource_type = "instance"
    tags          = var.tags
  }
}

resource "aws_eks_node_group" "zone" {
  count           = length(var.private_subnet_ids)
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "${var.name}-zone-${count.index}"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = [var.private_subnet_ids[count.index]]
  instance_types  = var.node_instance_types
  ami_type        = "AL2023_x86_64_STANDARD"
  launch_template {
    id      = aws_launch_template.node.id
    version = aws_launch_template.node.latest_version
  }
  scaling_config {
    min_size     = var.nodes_per_zone.min
    desired_size = var.nodes_per_zone.desired
    max_size     = var.nodes_per_zone.max
  }
  update_config {
    max_unavailable = 1
  }
  # The cluster autoscaler finds the groups by these tags.
  tags = merge(var.tags, {
    "k8s.io/cluster-autoscaler/enabled"     = "true"
    "k8s.io/cluster-autoscaler/${var.name}" = "owned"
  })
  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }
  depends_on = [aws_iam_role_policy_attachment.node]
}

# IRSA: pods assume IAM roles through the cluster's OIDC issuer.
data "tls_certificate" "oidc" {
  url = aws_eks_cluster.this.identity[0].oidc[0].issuer
}

resource "aws_iam_openid_connect_provider" "this" {
  url             = aws_eks_cluster.this.identity[0].oidc[0].issuer
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = [data.tls_certificate.oidc.certificates[0].sha1_fingerprint]
  tags            = var.tags
}

locals {
  issuer = replace(aws_eks_cluster.this.identity[0].oidc[0].issuer, "https://", "")
  irsa = {
    external-secrets   = { namespace = var.namespace, service_account = "tillpoint-external-secrets" }
    cluster-autoscaler = { namespace = "kube-system", service_account = "cluster-autoscaler" }
    # The application (src/platform/awsCredentials.ts reads the web identity EKS injects).
    api              = { namespace = var.namespace, service_account = "tillpoint-api" }
    worker           = { namespace = var.namespace, service_account = "tillpoint-worker" }
    terminal-gateway = { namespace = var.namespace, service_account = "tillpoint-terminal-gateway" }
  }
  app_roles = ["api", "worker", "terminal-gateway"]
}

resource "aws_iam_role" "irsa" {
  for_each = local.irsa
  name     = "${var.name}-${each.key}"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Federated = aws_iam_openid_connect_provider.this.arn }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "${local.issuer}:sub" = "system:serviceaccount:${each.value.namespace}:${each.value.service_account}"
          "${local.issuer}:aud" = "sts.amazonaws.com"
        }
      }
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "external_secrets" {
  role = aws_iam_role.irsa["external-secrets"].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Effect = "Allow", Action = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"], Resource = var.secrets_prefix_arn },
      { Effect = "Allow", Action = ["kms:Decrypt"], Resource = "*", Condition = { StringEquals = { "kms:ViaService" = "secretsmanager.${data.aws_region.current.name}.amazonaws.com" } } },
    ]
  })
}

resource "aws_iam_role_policy" "cluster_autoscaler" {
  role = aws_iam_role.irsa["cluster-autoscaler"].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Action    = ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:ResourceTag/k8s.io/cluster-autoscaler/${var.name}" = "owned" } }
      },
      {
        Effect   = "Allow"
        Action   = ["autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances", "autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeScalingActivities", "autoscaling:DescribeTags", "ec2:DescribeImages", "ec2:DescribeInstanceTypes", "ec2:DescribeLaunchTemplateVersions", "ec2:GetInstanceTypesFromInstanceRequirements", "eks:DescribeNodegroup"]
        Resource = "*"
      },
    ]
  })
}

# The application signs KMS (data keys) and S3 (audit export, Object Lock) requests. Each role
# may run the audit export (the app decides which process does), so all three get the same
# narrow policy; none may delete or shorten an object's retention.
resource "aws_iam_role_policy" "app" {
  for_each = toset(local.app_roles)
  role     = aws_iam_role.irsa[each.key].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Effect = "Allow", Action = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey", "kms:DescribeKey"], Resource = var.data_kms_key_arn },
      { Effect = "Allow", Action = ["s3:ListBucket"], Resource = var.audit_bucket_arn },
      { Effect = "Allow", Action = ["s3:PutObject", "s3:PutObjectRetention", "s3:GetObject"], Resource = "${var.audit_bucket_arn}/*" },
      { Effect = "Allow", Action = ["kms:GenerateDataKey", "kms:Decrypt"], Resource = var.logs_kms_key_arn, Condition = { StringEquals = { "kms:ViaService" = "s3.${data.aws_region.current.name}.amazonaws.com" } } },
    ]
  })
}

data "aws_region" "current" {}

output "cluster_name" { value = aws_eks_cluster.this.name }
output "cluster_endpoint" { value = aws_eks_cluster.this.endpoint }
output "cluster_security_group_id" { value = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id }
output "oidc_provider_arn" { value = aws_iam_openid_connect_provider.this.arn }
output "irsa_role_arns" { value = { for k, v in aws_iam_role.irsa : k => v.arn } }
