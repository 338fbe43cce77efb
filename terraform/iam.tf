# Identities and grants. One service account per function, one for Cloud Scheduler, one for the
# event deliveries (push subscriptions and the Eventarc trigger), one for the Dataflow workers and
# one for Cloud Build; each holds only what its code calls (shared/gcp/*.ts), on the narrowest
# resource the API allows. Project-level grants are used only where the permission exists at
# project level alone: creating BigQuery jobs (and, for the Dataflow workers, the temporary
# dataset of their query: bigquery.user), creating, listing and reading Dataflow jobs (a custom
# launcher role, and dataflow.viewer for publishOps' reconciler), running as a Dataflow worker (a
# custom role without storage), receiving Eventarc events, writing build logs; and the two
# storage grants on buckets Google creates and names (IAM conditions narrow them to that bucket).
#
# Every grant is additive (an *_iam_member), never authoritative, so nothing else's access in
# the project is removed, and no grant names a public principal.

# --- Service accounts ------------------------------------------------------------------------

resource "google_service_account" "publish_ops" {
  account_id   = "${var.name_prefix}-publish-ops"
  display_name = "publishOps (consolidation chain)"
  description  = "Reads the changed operation IDs, publishes them, writes the batch and the watermark."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "collect_ids" {
  account_id   = "${var.name_prefix}-collect-ids"
  display_name = "collectIds (consolidation chain)"
  description  = "Stores the ID chunks of a batch and announces complete batches."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "launch_dataflow" {
  account_id   = "${var.name_prefix}-launch-dataflow"
  display_name = "launchDataflow (consolidation chain)"
  description  = "Stages a batch's IDs in BigQuery and launches its Dataflow job."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "merge_on_complete" {
  account_id   = "${var.name_prefix}-merge-on-complete"
  display_name = "mergeOnComplete (consolidation chain)"
  description  = "MERGEs a finished batch into the consolidated table."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "scheduler" {
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "Cloud Scheduler caller of publishOps (consolidation chain)"
  description  = "Identity of the OIDC token Cloud Scheduler sends to publishOps."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "triggers" {
  account_id   = "${var.name_prefix}-triggers"
  display_name = "Event triggers (consolidation chain)"
  description  = "Identity the Pub/Sub and Dataflow event triggers deliver to collectIds, launchDataflow and mergeOnComplete with."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "build" {
  account_id   = "${var.name_prefix}-build"
  display_name = "Cloud Build of the functions (consolidation chain)"
  description  = "Builds the four functions' images from the source archive."

  depends_on = [google_project_service.enabled]
}

resource "google_service_account" "dataflow_worker" {
  account_id   = "${var.name_prefix}-dataflow-worker"
  display_name = "Dataflow workers (consolidation chain)"
  description  = "Runs the enrichment jobs: reads the sources and the batch's IDs, writes the batch's enriched table."

  depends_on = [google_project_service.enabled]
}

# --- publishOps ------------------------------------------------------------------------------

# Runs the rejected-rows count and the changed-IDs query as BigQuery jobs; jobs are created in a
# project, so this exists at project level only.
resource "google_project_iam_member" "publish_ops_runs_jobs" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = "serviceAccount:${google_service_account.publish_ops.email}"
}

# Reads the USSD operations table to find the changed operations and the rejected rows; granted
# on that table alone, not its dataset.
resource "google_bigquery_table_iam_member" "publish_ops_reads_ussd" {
  project    = var.project_id
  dataset_id = var.source_dataset
  table_id   = var.ussd_table
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.publish_ops.email}"

  depends_on = [google_bigquery_table.source]
}

# Reads the transactions table: an operation whose transaction changed is in the window too.
resource "google_bigquery_table_iam_member" "publish_ops_reads_transactions" {
  project    = var.project_id
  dataset_id = var.source_dataset
  table_id   = var.transactions_table
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.publish_ops.email}"

  depends_on = [google_bigquery_table.source]
}

# Reads and replaces the watermark and creates the batch's manifest and state, all with
# generation preconditions; replacing an object needs delete as well as create, which
# objectUser has and objectCreator lacks.
resource "google_storage_bucket_iam_member" "publish_ops_uses_state" {
  bucket = google_storage_bucket.state.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.publish_ops.email}"
}

# Publishes the ID chunks and the seal, on the IDs topic only.
resource "google_pubsub_topic_iam_member" "publish_ops_publishes_ids" {
  project = var.project_id
  topic   = google_pubsub_topic.ids.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.publish_ops.email}"
}

# The reconciler runs at the start of every publishOps and repairs batches that stopped moving;
# the grants below are what its repairs need, each on the narrowest resource.

# Announces a complete batch never announced, and relaunches a failed one with the next attempt.
resource "google_pubsub_topic_iam_member" "publish_ops_publishes_batches" {
  project = var.project_id
  topic   = google_pubsub_topic.batches.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.publish_ops.email}"
}

# Asks Dataflow what became of a launched batch's job (getJob) when its statusChanged event never
# came; Dataflow grants exist at project level only, and viewer is the read-only role.
resource "google_project_iam_member" "publish_ops_reads_jobs" {
  project = var.project_id
  role    = "roles/dataflow.viewer"
  member  = "serviceAccount:${google_service_account.publish_ops.email}"
}

# Merges a batch whose job finished DONE but whose event was lost: reads the batch's enriched
# table and drops its tables (per-batch names, so the grant is on the staging dataset) ...
resource "google_bigquery_dataset_iam_member" "publish_ops_uses_staging" {
  project    = var.project_id
  dataset_id = google_bigquery_dataset.staging.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.publish_ops.email}"
}

# ... and MERGEs it into the consolidated table: granted on that table alone.
resource "google_bigquery_table_iam_member" "publish_ops_writes_consolidated" {
  project    = var.project_id
  dataset_id = google_bigquery_table.consolidated.dataset_id
  table_id   = google_bigquery_table.consolidated.table_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.publish_ops.email}"
}

# --- collectIds ------------------------------------------------------------------------------

# Creates chunk, seal and completion objects (create-only), checks for and lists them, reads the
# manifest and moves the batch state to COLLECTED (a generation-matched replace).
resource "google_storage_bucket_iam_member" "collect_ids_uses_state" {
  bucket = google_storage_bucket.state.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.collect_ids.email}"
}

# Announces complete batches, on the batches topic only.
resource "google_pubsub_topic_iam_member" "collect_ids_publishes_batches" {
  project = var.project_id
  topic   = google_pubsub_topic.batches.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.collect_ids.email}"
}

# --- launchDataflow --------------------------------------------------------------------------

# Runs the load job of the batch's IDs and the CREATE TABLE AS of its parameters; jobs are
# created in a project, so this exists at project level only.
resource "google_project_iam_member" "launch_dataflow_runs_jobs" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = "serviceAccount:${google_service_account.launch_dataflow.email}"
}

# Creates and replaces the batch's IDs and parameters tables in the staging dataset; their names
# are per batch, so the grant is on the dataset.
resource "google_bigquery_dataset_iam_member" "launch_dataflow_writes_staging" {
  project    = var.project_id
  dataset_id = google_bigquery_dataset.staging.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.launch_dataflow.email}"
}

# Reads the manifest and state, lists the chunks, moves the state to LAUNCHED; the load job
# reads the chunk files with this identity too.
resource "google_storage_bucket_iam_member" "launch_dataflow_uses_state" {
  bucket = google_storage_bucket.state.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.launch_dataflow.email}"
}

# Launches the Flex Template, lists active jobs to adopt one on a 409 and reads them; Dataflow
# grants exist at project level only. roles/dataflow.developer would also let it cancel and
# update any job of the project and start Cloud Builds: a custom role holds only the first three.
resource "google_project_iam_custom_role" "dataflow_launcher" {
  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_dataflow_launcher"
  title       = "Dataflow launcher (consolidation chain)"
  description = "Launches Dataflow jobs and reads them; cannot cancel or update jobs, nor start builds."
  permissions = [
    "dataflow.jobs.create",
    "dataflow.jobs.get",
    "dataflow.jobs.list",
    "dataflow.messages.list",
    "dataflow.metrics.get",
  ]

  depends_on = [google_project_service.enabled]
}

# The launcher role above, granted at project level, the only level it exists at.
resource "google_project_iam_member" "launch_dataflow_launches_jobs" {
  project = var.project_id
  role    = google_project_iam_custom_role.dataflow_launcher.name
  member  = "serviceAccount:${google_service_account.launch_dataflow.email}"
}

# Launches the job as the Dataflow worker account (environment.serviceAccountEmail), which needs
# actAs on that one account, not on every account of the project.
resource "google_service_account_iam_member" "launch_dataflow_acts_as_worker" {
  service_account_id = google_service_account.dataflow_worker.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.launch_dataflow.email}"
}

# --- mergeOnComplete -------------------------------------------------------------------------

# Runs the profile query and the MERGE as BigQuery jobs; project level only.
resource "google_project_iam_member" "merge_on_complete_runs_jobs" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = "serviceAccount:${google_service_account.merge_on_complete.email}"
}

# Reads the batch's enriched table, then drops its IDs, parameters and enriched tables.
resource "google_bigquery_dataset_iam_member" "merge_on_complete_uses_staging" {
  project    = var.project_id
  dataset_id = google_bigquery_dataset.staging.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.merge_on_complete.email}"
}

# MERGEs into the consolidated table: granted on that table alone.
resource "google_bigquery_table_iam_member" "merge_on_complete_writes_consolidated" {
  project    = var.project_id
  dataset_id = google_bigquery_table.consolidated.dataset_id
  table_id   = google_bigquery_table.consolidated.table_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.merge_on_complete.email}"
}

# Reads the batch state and moves it to MERGED or FAILED (a generation-matched replace).
resource "google_storage_bucket_iam_member" "merge_on_complete_uses_state" {
  bucket = google_storage_bucket.state.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.merge_on_complete.email}"
}

# --- Cloud Scheduler -------------------------------------------------------------------------

# Calls publishOps with its OIDC token: invoker on that function's Cloud Run service only.
resource "google_cloud_run_v2_service_iam_member" "scheduler_invokes_publish_ops" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.publish_ops.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler.email}"
}

# --- Event triggers --------------------------------------------------------------------------

# Delivers the IDs topic's messages to collectIds (the push subscription's OIDC identity).
resource "google_cloud_run_v2_service_iam_member" "triggers_invoke_collect_ids" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.collect_ids.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.triggers.email}"
}

# Delivers the batches topic's messages to launchDataflow (the push subscription's OIDC identity).
resource "google_cloud_run_v2_service_iam_member" "triggers_invoke_launch_dataflow" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.launch_dataflow.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.triggers.email}"
}

# Delivers the Dataflow job status events to mergeOnComplete.
resource "google_cloud_run_v2_service_iam_member" "triggers_invoke_merge_on_complete" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.merge_on_complete.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.triggers.email}"
}

# The Eventarc trigger's identity (mergeOnComplete's) must be allowed to receive events; Eventarc
# grants this at project level only.
resource "google_project_iam_member" "triggers_receive_events" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${google_service_account.triggers.email}"
}

# --- Dataflow workers ------------------------------------------------------------------------

# Runs the job's work items, writes its logs and metrics; project level only.
# roles/dataflow.worker also holds storage.objects.get/create and storage.buckets.get on every
# bucket of the project (the watermark, the batches, the function sources): this custom role is
# its permissions without storage, and the buckets the job needs are granted one by one below.
resource "google_project_iam_custom_role" "dataflow_worker" {
  project     = var.project_id
  role_id     = "${replace(var.name_prefix, "-", "_")}_dataflow_worker"
  title       = "Dataflow worker without storage (consolidation chain)"
  description = "roles/dataflow.worker without its project-wide storage permissions."
  permissions = [
    "autoscaling.sites.readRecommendations",
    "autoscaling.sites.writeMetrics",
    "autoscaling.sites.writeState",
    "compute.instanceGroupManagers.update",
    "compute.instances.delete",
    "compute.instances.setDiskAutoDelete",
    "dataflow.jobs.get",
    "dataflow.shuffle.read",
    "dataflow.shuffle.write",
    "dataflow.streamingWorkItems.ImportState",
    "dataflow.streamingWorkItems.commitWork",
    "dataflow.streamingWorkItems.getData",
    "dataflow.streamingWorkItems.getWork",
    "dataflow.streamingWorkItems.getWorkerMetadata",
    "dataflow.workItems.lease",
    "dataflow.workItems.sendMessage",
    "dataflow.workItems.update",
    "logging.logEntries.create",
    "monitoring.timeSeries.create",
  ]

  depends_on = [google_project_service.enabled]
}

# The worker role above, granted at project level, the only level it exists at.
resource "google_project_iam_member" "dataflow_worker_runs_work" {
  project = var.project_id
  role    = google_project_iam_custom_role.dataflow_worker.name
  member  = "serviceAccount:${google_service_account.dataflow_worker.email}"
}

# Google's Flex Template guide requires the launcher VM's and workers' account to hold Viewer
# (roles/viewer) on the project, besides the worker role and read-write access to the staging
# location: https://cloud.google.com/dataflow/docs/guides/templates/run-flex-templates
# ("Required permissions"). Viewer reads resource metadata only: it grants no object data in
# Cloud Storage and no table data in BigQuery, so the buckets and tables stay as granted below.
# The launch sets its staging location explicitly (DATAFLOW_STAGING_LOCATION, staging/ in the
# Dataflow bucket), so the read-write access the guide asks for is the grant on that bucket below,
# never Dataflow's default staging bucket.
resource "google_project_iam_member" "dataflow_worker_views_project" {
  project = var.project_id
  role    = "roles/viewer"
  member  = "serviceAccount:${google_service_account.dataflow_worker.email}"
}

# The pipeline's ReadFromBigQuery runs its query as a job, into a temporary dataset it creates
# and deletes, and reads the result through a Storage Read API session; WriteToBigQuery runs load
# jobs. Job, dataset creation and read-session permissions exist at project level only, and
# bigquery.user is the smallest predefined role holding the three. It grants no access to
# existing tables' data: that comes from the grants below.
resource "google_project_iam_member" "dataflow_worker_runs_bigquery" {
  project = var.project_id
  role    = "roles/bigquery.user"
  member  = "serviceAccount:${google_service_account.dataflow_worker.email}"
}

# The enrichment query reads the latest USSD row of each changed operation.
resource "google_bigquery_table_iam_member" "dataflow_worker_reads_ussd" {
  project    = var.project_id
  dataset_id = var.source_dataset
  table_id   = var.ussd_table
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.dataflow_worker.email}"

  depends_on = [google_bigquery_table.source]
}

# The enrichment query reads the operations' transactions.
resource "google_bigquery_table_iam_member" "dataflow_worker_reads_transactions" {
  project    = var.project_id
  dataset_id = var.source_dataset
  table_id   = var.transactions_table
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.dataflow_worker.email}"

  depends_on = [google_bigquery_table.source]
}

# The enrichment query joins the services reference table.
resource "google_bigquery_table_iam_member" "dataflow_worker_reads_services" {
  project    = var.project_id
  dataset_id = var.source_dataset
  table_id   = var.services_table
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.dataflow_worker.email}"

  depends_on = [google_bigquery_table.source]
}

# The enrichment query joins the agents reference table.
resource "google_bigquery_table_iam_member" "dataflow_worker_reads_agents" {
  project    = var.project_id
  dataset_id = var.source_dataset
  table_id   = var.agents_table
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.dataflow_worker.email}"

  depends_on = [google_bigquery_table.source]
}

# Reads the batch's IDs and parameters tables and writes (creates, truncates) its enriched table,
# all in the staging dataset.
resource "google_bigquery_dataset_iam_member" "dataflow_worker_uses_staging" {
  project    = var.project_id
  dataset_id = google_bigquery_dataset.staging.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.dataflow_worker.email}"
}

# Writes, reads and deletes the job's temp files (the files WriteToBigQuery loads from), in the
# Dataflow bucket only.
resource "google_storage_bucket_iam_member" "dataflow_worker_uses_temp" {
  bucket = google_storage_bucket.dataflow.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.dataflow_worker.email}"
}

# The template's launcher, which runs as this account, reads the pipeline file. It lives in the
# source bucket, where only the deployer writes (no function's account can change the code that
# runs as this account), and the grant is narrowed by an IAM condition to pipeline/, so a job
# cannot read the function sources either.
resource "google_storage_bucket_iam_member" "dataflow_worker_reads_pipeline" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.dataflow_worker.email}"

  condition {
    title       = "pipeline-file-only"
    description = "Objects under pipeline/ only."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.source.name}/objects/pipeline/\")"
  }
}

# --- Cloud Build -------------------------------------------------------------------------------
# Cloud Build would otherwise build as the Compute Engine default service account, which has no
# roles where the organization disables automatic grants. A function build needs to write its
# logs, push its image and read the source (Cloud Run functions' "custom build service account"
# guide); nothing more is granted.

# Writes the build logs; log writing exists at project level only.
resource "google_project_iam_member" "build_writes_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.build.email}"
}

# Pushes the function images (and the build cache) into the chain's repository only.
resource "google_artifact_registry_repository_iam_member" "build_pushes_images" {
  project    = var.project_id
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build.email}"
}

# Reads the source: Cloud Functions copies the archive into its own bucket,
# gcf-v2-sources-<project number>-<region>, and the build fetches that copy ("Access to bucket
# gcf-v2-sources-... denied. You must grant Storage Object Viewer permission to <build account>"
# otherwise). Google creates and names the bucket after the grant is made, so the grant is on the
# project, narrowed by a condition to that bucket: the bucket itself (the fetch checks it) and
# its objects.
resource "google_project_iam_member" "build_reads_sources" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = "serviceAccount:${google_service_account.build.email}"

  condition {
    title       = "function-sources-bucket"
    description = "The Cloud Functions source bucket of the region only."
    expression  = "resource.name == \"projects/_/buckets/${local.function_sources_bucket}\" || resource.name.startsWith(\"projects/_/buckets/${local.function_sources_bucket}/\")"
  }
}

# --- The Eventarc service agent --------------------------------------------------------------

# Creates and runs mergeOnComplete's Dataflow trigger (its Pub/Sub transport); Eventarc grants
# its agent this role at project level only, and a fresh project's agent may not have it yet.
resource "google_project_iam_member" "eventarc_agent_runs_triggers" {
  project = var.project_id
  role    = "roles/eventarc.serviceAgent"
  member  = "serviceAccount:${local.eventarc_service_agent}"
}

# --- The Pub/Sub service agent ---------------------------------------------------------------
# Each grant waits for the agent (created in agents.tf) to be known to IAM.

# Moves a message that failed max_delivery_attempts times to the dead-letter topic: publisher on
# that topic only.
resource "google_pubsub_topic_iam_member" "pubsub_agent_publishes_dead_letters" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${local.pubsub_service_agent}"

  depends_on = [time_sleep.service_agents]
}

# Moving a message to the dead-letter topic also acknowledges it on its subscription: subscriber
# on each push subscription, not the project.
resource "google_pubsub_subscription_iam_member" "pubsub_agent_acks_dead_letters" {
  for_each = google_pubsub_subscription.push

  project      = var.project_id
  subscription = google_pubsub_subscription.push[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${local.pubsub_service_agent}"

  depends_on = [time_sleep.service_agents]
}

# Signs the OIDC tokens of the push deliveries (the two subscriptions and the Eventarc trigger's)
# as the triggers' account. Projects whose Pub/Sub service agent predates April 2021 lack this;
# granted on that one account, not the project.
resource "google_service_account_iam_member" "pubsub_agent_signs_trigger_tokens" {
  service_account_id = google_service_account.triggers.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${local.pubsub_service_agent}"

  depends_on = [time_sleep.service_agents]
}
