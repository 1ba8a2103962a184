# The same stack as infra/cloudformation/pipeline.yaml, for teams that deploy with Terraform.
# Not applied in CI (no terraform binary there): tests parse it with python-hcl2 and run checkov on it.
terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source = "hashicorp/aws"
      # FLINK-2_3 needs a provider release that knows the runtime; check `terraform validate` on upgrade.
      version = ">= 6.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4"
    }
  }
}

provider "aws" {
  region = var.region
  # Every resource carries the project and tenant tags (ABAC isolation), as in the CloudFormation stack.
  default_tags {
    tags = {
      project = var.project
      tenant  = var.tenant
    }
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}
