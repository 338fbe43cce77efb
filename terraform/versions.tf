# Terraform and provider versions, and the provider configuration.
#
# `nullable = false` on variables and the validation functions used in variables.tf are all
# available from 1.5. The google providers are pinned to the 6.x line: every argument used here
# (build_config.service_account, build_config.docker_repository, soft_delete_policy,
# cleanup_policies, default_labels, ...) exists in 6.14 and later 6.x releases.
#
# The first `terraform init` writes .terraform.lock.hcl with the exact provider versions and
# checksums it chose: commit it, so every later init (another machine, CI) installs the same
# providers; `terraform init -upgrade` moves it on deliberately.

terraform {
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.14.0, < 7.0.0"
    }
    # google_project_service_identity (the Eventarc and Pub/Sub service agents) exists only in
    # the beta provider.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = ">= 6.14.0, < 7.0.0"
    }
    # time_sleep: waits for IAM grants to propagate before the resources that rely on them.
    time = {
      source  = "hashicorp/time"
      version = ">= 0.9.0, < 1.0.0"
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

provider "google-beta" {
  project        = var.project_id
  region         = var.region
  default_labels = merge({ app = "ussd-consolidation" }, var.labels)
}
