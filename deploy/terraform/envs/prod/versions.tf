terraform {
  required_version = ">= 1.9"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
    tls = {
      source  = "hashicorp/tls"
      version = "~> 4.0"
    }
  }
  # State: encrypted, versioned, locked. The bucket and table are made once by hand
  # (deploy/README.md, "Bootstrap").
  backend "s3" {
    bucket         = "tillpoint-prod-terraform-state"
    key            = "prod/terraform.tfstate"
    region         = "ap-south-1"
    encrypt        = true
    kms_key_id     = "alias/tillpoint-terraform-state"
    dynamodb_table = "tillpoint-terraform-locks"
  }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = local.tags
  }
}

# The warm standby region (disaster recovery): deploy/README.md, "Disaster recovery".
provider "aws" {
  alias  = "dr"
  region = var.dr_region
  default_tags {
    tags = local.tags
  }
}
