# Cloud Scheduler calls publishOps every 20 minutes, as its own service account, with an OIDC
# token for the function's URL: publishOps stays private, only identities granted
# roles/run.invoker on it (iam.tf) get through.

resource "google_cloud_scheduler_job" "publish_ops" {
  name        = "${var.name_prefix}-publish-ops"
  region      = var.region
  description = "Starts a consolidation cycle: POST to publishOps."
  schedule    = var.schedule
  time_zone   = var.time_zone

  # Waits for publishOps as long as publishOps may take.
  attempt_deadline = "${var.publish_ops_timeout_seconds}s"

  # No retry: a failed cycle moves no watermark, so the next tick re-reads the same window. A
  # retry would only collide with that tick.
  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.publish_ops.service_config[0].uri
    # publishOps takes an empty JSON object.
    body    = base64encode("{}")
    headers = { "Content-Type" = "application/json" }

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.publish_ops.service_config[0].uri
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_cloud_run_v2_service_iam_member.scheduler_invokes_publish_ops,
  ]
}
