# The project, its APIs, and the names and settings shared by the other files.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  # Paths are relative to this folder, so the configuration works from any checkout.
  repo_root  = "${path.module}/.."
  schema_dir = "${path.module}/../shared/schema"

  state_bucket    = var.state_bucket != "" ? var.state_bucket : "${var.project_id}-${var.name_prefix}-state"
  dataflow_bucket = "${var.project_id}-${var.name_prefix}-dataflow"
  source_bucket   = "${var.project_id}-${var.name_prefix}-source"

  # The Pub/Sub service agent: it moves undeliverable messages to the dead-letter topic and signs
  # the OIDC tokens of the push deliveries. The Eventarc service agent creates and runs the
  # Dataflow trigger. Both are created explicitly (agents.tf).
  pubsub_service_agent   = google_project_service_identity.pubsub.email
  eventarc_service_agent = google_project_service_identity.eventarc.email

  # The bucket Google creates and names in the region for the copy of the functions' source that
  # Cloud Build reads.
  function_sources_bucket = "gcf-v2-sources-${data.google_project.this.number}-${var.region}"

  # The four source tables: their names, and the schema file each is created from when
  # create_source_tables is set (the same files shared/schema/index.ts reads). The two change
  # tables get the layout the chain's queries are written for: partitioned by day on the column
  # the window reads, clustered on the key they are joined on.
  source_tables = {
    ussd         = { table = var.ussd_table, schema = "ussd_operations", partition_field = "source_timestamp", clustering = ["operation_id"] }
    transactions = { table = var.transactions_table, schema = "transactiongu", partition_field = "updated_at", clustering = ["transaction_id"] }
    services     = { table = var.services_table, schema = "services", partition_field = null, clustering = [] }
    agents       = { table = var.agents_table, schema = "agents", partition_field = null, clustering = [] }
  }

  # The environment of every function: the chain's configuration (shared/config.ts), read once
  # at start-up by functions/index.ts. The four functions are one package, so they get the same
  # configuration. Variables of the local stack only (STATE_DIR, WAREHOUSE_FILE, LOCAL_BUS_*) are
  # left out.
  function_environment = {
    CONSOLIDATION_BACKEND    = "gcp"
    GCP_PROJECT              = var.project_id
    REGION                   = var.region
    BIGQUERY_LOCATION        = var.bigquery_location
    STATE_BUCKET             = google_storage_bucket.state.name
    SOURCE_DATASET           = var.source_dataset
    USSD_TABLE               = var.ussd_table
    TRANSACTIONS_TABLE       = var.transactions_table
    SERVICES_TABLE           = var.services_table
    AGENTS_TABLE             = var.agents_table
    CONSOLIDATED_DATASET     = google_bigquery_dataset.consolidated.dataset_id
    CONSOLIDATED_TABLE       = google_bigquery_table.consolidated.table_id
    STAGING_DATASET          = google_bigquery_dataset.staging.dataset_id
    IDS_TOPIC                = google_pubsub_topic.ids.name
    BATCHES_TOPIC            = google_pubsub_topic.batches.name
    CHUNK_SIZE               = tostring(var.chunk_size)
    PUBLISH_CONCURRENCY      = tostring(var.publish_concurrency)
    WATERMARK_OBJECT         = var.watermark_object
    INITIAL_WATERMARK        = var.initial_watermark
    LOOKBACK                 = var.lookback
    SAFETY_LAG               = var.safety_lag
    MAX_WINDOW               = var.max_window
    # The extraction lease outlives the longest publishOps run, so a run that is still working
    # never loses it; a run that died frees it a minute after its timeout.
    LEASE_DURATION = "${var.publish_ops_timeout_seconds + 60}s"
    STUCK_AFTER    = var.stuck_after
    MAX_ATTEMPTS   = tostring(var.max_attempts)
    REPLAY_MAX_IDS = tostring(var.replay_max_ids)
    TEMPLATE_PATH            = var.template_path != "" ? var.template_path : "gs://dataflow-templates-${var.region}/latest/flex/Yaml_Template"
    PIPELINE_FILE            = "gs://${google_storage_bucket_object.pipeline.bucket}/${google_storage_bucket_object.pipeline.name}"
    DATAFLOW_TEMP_LOCATION   = "gs://${google_storage_bucket.dataflow.name}/temp"
    DATAFLOW_STAGING_LOCATION = "gs://${google_storage_bucket.dataflow.name}/staging"
    DATAFLOW_SERVICE_ACCOUNT = google_service_account.dataflow_worker.email
    DATAFLOW_MAX_WORKERS     = tostring(var.dataflow_max_workers)
    LOG_LEVEL                = var.log_level
  }
}

# The APIs the chain calls or is built and run by. They stay enabled on destroy: other workloads
# of the project may use them too.
resource "google_project_service" "enabled" {
  for_each = toset([
    "artifactregistry.googleapis.com",     # images of the functions
    "bigquery.googleapis.com",             # query, load and MERGE jobs
    "bigquerystorage.googleapis.com",      # the pipeline's ReadFromBigQuery reads through the Storage Read API
    "cloudbuild.googleapis.com",           # builds the functions from the source archive
    "cloudfunctions.googleapis.com",       # the four functions
    "cloudresourcemanager.googleapis.com", # the project lookup above
    "cloudscheduler.googleapis.com",       # the 20-minute job
    "compute.googleapis.com",              # Dataflow workers are Compute Engine VMs
    "dataflow.googleapis.com",             # the enrichment jobs
    "eventarc.googleapis.com",             # the three event triggers
    "iam.googleapis.com",                  # service accounts
    "logging.googleapis.com",              # function, build and job logs
    "pubsub.googleapis.com",               # the topics
    "run.googleapis.com",                  # Cloud Run functions run on Cloud Run services
    "storage.googleapis.com",              # the buckets
  ])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
