# Terraform and provider versions, and the provider configuration.
#
# terraform_data needs Terraform 1.4; `nullable = false` on variables and the validation
# functions used in variables.tf are all available from 1.5. The google provider is pinned to
# the 6.x line: every argument used here (build_config.service_account, soft_delete_policy,
# default_labels, ...) exists in 6.14 and later 6.x releases.

terraform {
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.14.0, < 7.0.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4.0, < 3.0.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region

  # Every resource that takes labels gets these, so the chain's resources can be found (and
  # billed) together.
  default_labels = merge({ app = "ussd-consolidation" }, var.labels)
}
