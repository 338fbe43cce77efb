# The Google-managed service agents the chain relies on, and the waits for IAM to propagate.
#
# Enabling an API does not create its service agent: Google creates it lazily, on first use. On a
# fresh project, a grant naming service-<n>@gcp-sa-pubsub... then fails with "does not exist", and
# the Dataflow Eventarc trigger fails with "Permission denied while using the Eventarc Service
# Agent" (hashicorp/terraform-provider-google#14584 and #25294). So the two agents are created
# here, explicitly, the Eventarc agent gets its role, and every resource that needs one waits for
# it, and for its grants, to be visible to IAM.

resource "google_project_service_identity" "pubsub" {
  provider = google-beta
  project  = var.project_id
  service  = "pubsub.googleapis.com"

  depends_on = [google_project_service.enabled]
}

resource "google_project_service_identity" "eventarc" {
  provider = google-beta
  project  = var.project_id
  service  = "eventarc.googleapis.com"

  depends_on = [google_project_service.enabled]
}

# IAM is eventually consistent: a service agent created a moment ago, or a role granted to it,
# may not be usable for a minute. Every grant to an agent and every trigger waits for this.
resource "time_sleep" "service_agents" {
  create_duration = var.iam_propagation_wait

  triggers = {
    pubsub   = google_project_service_identity.pubsub.email
    eventarc = google_project_service_identity.eventarc.email
  }

  depends_on = [google_project_iam_member.eventarc_agent_runs_triggers]
}

# Eventarc checks, when it creates mergeOnComplete's trigger, that the trigger's account holds
# roles/eventarc.eventReceiver and that the Pub/Sub agent may sign its tokens: a trigger created
# right after those grants fails. The push subscriptions need the same token grant.
resource "time_sleep" "trigger_grants" {
  create_duration = var.iam_propagation_wait

  triggers = {
    receiver = google_project_iam_member.triggers_receive_events.id
    tokens   = google_service_account_iam_member.pubsub_agent_signs_trigger_tokens.id
  }
}

# Cloud Build starts the functions' builds as the build account as soon as the functions are
# created: its grants must be visible by then.
resource "time_sleep" "build_grants" {
  create_duration = var.iam_propagation_wait

  triggers = {
    logs    = google_project_iam_member.build_writes_logs.id
    images  = google_artifact_registry_repository_iam_member.build_pushes_images.id
    sources = google_project_iam_member.build_reads_sources.id
  }
}
