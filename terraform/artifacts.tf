# The image repository of the function builds. Left to Cloud Functions, images would go to its
# own gcf-artifacts repository and stay forever, one set per deployment; here every build pushes
# into this repository, whose cleanup policies keep the newest images of each function (the one
# running and a few to roll back to) and delete the rest once they are old.

resource "google_artifact_registry_repository" "functions" {
  location      = var.region
  repository_id = "${var.name_prefix}-functions"
  format        = "DOCKER"
  description   = "Images of the consolidation chain's functions, built by Cloud Build; old ones are cleaned up."

  cleanup_policy_dry_run = false

  # A KEEP policy wins over a DELETE one: the newest images of each function (each is its own
  # package) survive however old they are, so the running revision's image is never deleted.
  cleanup_policies {
    id     = "keep-newest"
    action = "KEEP"
    most_recent_versions {
      keep_count = var.images_kept
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "${var.image_retention_days * 86400}s"
    }
  }

  depends_on = [google_project_service.enabled]
}
