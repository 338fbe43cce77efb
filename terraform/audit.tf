# The audit: once a day Cloud Scheduler calls the auditConsolidation function, which compares
# consolidated_table with a from-scratch consolidation of the sources for the last audit_days
# creation days (README: "The audit"), keeps the result in the audit table and logs it (ERROR
# when differences are left, for an alert). With audit_repair it replays the differing
# operations through publishOps, as an operator would.
#
# Why a function and not a BigQuery scheduled query: the audit composes the pipeline file's SQL,
# classifies the differences (missing, orphan, left to the chain) and replays through publishOps,
# none of which a scheduled query can do; and the function is the same package as the chain's.

# --- Variables -------------------------------------------------------------------------------

variable "audit_schedule" {
  type        = string
  nullable    = false
  default     = "30 3 * * *"
  description = "Cron schedule of the Cloud Scheduler job calling the audit (read in time_zone): daily at 03:30 by default."

  validation {
    condition     = can(regex("^\\S+(\\s+\\S+){4}$", trimspace(var.audit_schedule)))
    error_message = "audit_schedule must be a five-field cron expression such as 30 3 * * *."
  }
}

variable "audit_days" {
  type        = number
  nullable    = false
  default     = 3
  description = "Creation days each scheduled audit checks: the watermark's day and the days before it (AUDIT_DAYS). The BigQuery cost grows with it (README: what the audit costs)."

  validation {
    condition     = var.audit_days >= 1 && var.audit_days <= 366 && floor(var.audit_days) == var.audit_days
    error_message = "audit_days must be a whole number from 1 to 366."
  }
}

variable "audit_repair" {
  type        = bool
  nullable    = false
  default     = false
  description = "Whether the scheduled audit replays the operations it finds different or missing (AUDIT_REPAIR). Off by default: the audit reports, a person decides."

  validation {
    condition     = contains([true, false], var.audit_repair)
    error_message = "audit_repair must be true or false."
  }
}

variable "audit_ingress" {
  type        = string
  nullable    = false
  default     = "ALLOW_INTERNAL_ONLY"
  description = "Network ingress of the audit function. ALLOW_INTERNAL_ONLY admits its Cloud Scheduler job (internal traffic of the project); ALLOW_ALL also lets an operator holding roles/run.invoker call it by hand from outside (IAM still applies)."

  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY"], var.audit_ingress)
    error_message = "audit_ingress must be ALLOW_ALL or ALLOW_INTERNAL_ONLY."
  }
}

variable "audit_table" {
  type        = string
  nullable    = false
  default     = "consolidation_audit"
  description = "Table, in the consolidated dataset, where each audit records the days it checked (AUDIT_TABLE)."

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]{0,1023}$", var.audit_table))
    error_message = "audit_table must be a plain identifier (letters, digits, _)."
  }
}

variable "audit_timeout_seconds" {
  type        = number
  nullable    = false
  default     = 1800
  description = "Longest an audit may run (the function's timeout and Cloud Scheduler's attempt deadline): two BigQuery queries, and with audit_repair the replays."

  validation {
    condition     = var.audit_timeout_seconds >= 60 && var.audit_timeout_seconds <= 1800
    error_message = "audit_timeout_seconds must be between 60 and 1800 (Cloud Scheduler waits at most 30 minutes)."
  }
}

# --- The audit table -------------------------------------------------------------------------

resource "google_bigquery_table" "audit" {
  dataset_id  = google_bigquery_dataset.consolidated.dataset_id
  table_id    = var.audit_table
  description = "One row per creation day per audit: counts and fingerprints of both sides, the differences found, what was replayed."
  schema      = file("${local.schema_dir}/consolidation_audit.json")

  # Read by audit date ("what did last night's audit say"): a partition per day keeps that cheap.
  time_partitioning {
    type  = "DAY"
    field = "audited_at"
  }

  deletion_protection = var.protect_data
}

# --- The function ----------------------------------------------------------------------------

resource "google_service_account" "audit" {
  account_id   = "${var.name_prefix}-audit"
  display_name = "Audit of the consolidated table"
  description  = "Compares consolidated_table with a from-scratch consolidation of the sources, records the result, and may ask publishOps for replays."

  depends_on = [google_project_service.enabled]
}

resource "google_cloudfunctions2_function" "audit" {
  name        = "${var.name_prefix}-audit"
  location    = var.region
  description = "Audits consolidated_table against a from-scratch consolidation of the sources, per creation day."

  build_config {
    runtime         = var.function_runtime
    entry_point     = "auditConsolidation"
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.function_source.name
      }
    }
  }

  service_config {
    # The function waits on BigQuery; the rows it holds are the differing days' drill-down only.
    available_memory = "512Mi"
    timeout_seconds  = var.audit_timeout_seconds
    # One audit at a time: two would replay the same operations twice.
    max_instance_count             = 1
    min_instance_count             = 0
    ingress_settings               = var.audit_ingress
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.audit.email
    environment_variables = merge(local.function_environment, {
      AUDIT_TABLE     = google_bigquery_table.audit.table_id
      AUDIT_DAYS      = tostring(var.audit_days)
      AUDIT_REPAIR    = tostring(var.audit_repair)
      PUBLISH_OPS_URL = google_cloudfunctions2_function.publish_ops.service_config[0].uri
    })
  }

  depends_on = [google_project_service.enabled, time_sleep.build_grants]
}

# --- The schedule ----------------------------------------------------------------------------

resource "google_cloud_scheduler_job" "audit" {
  name        = "${var.name_prefix}-audit"
  region      = var.region
  description = "Audits consolidated_table against the sources: POST to auditConsolidation."
  schedule    = var.audit_schedule
  time_zone   = var.time_zone

  attempt_deadline = "${var.audit_timeout_seconds}s"

  # No retry: an audit that failed changed nothing, and tomorrow's covers the same days again.
  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.audit.service_config[0].uri
    # The audit's defaults: the audit_days days ending on the watermark's day, repair as audit_repair says.
    body    = base64encode("{}")
    headers = { "Content-Type" = "application/json" }

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.audit.service_config[0].uri
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_cloud_run_v2_service_iam_member.scheduler_invokes_audit,
  ]
}

# --- Grants ----------------------------------------------------------------------------------

# Runs the audit's two queries and its insert as BigQuery jobs; jobs are created in a project,
# so this exists at project level only.
resource "google_project_iam_member" "audit_runs_jobs" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = "serviceAccount:${google_service_account.audit.email}"
}

# Reads the four sources to consolidate the audited days from scratch, each table on its own,
# never their dataset: the USSD operations ...
resource "google_bigquery_table_iam_member" "audit_reads_ussd" {
  project    = var.project_id
  dataset_id = var.source_dataset
  table_id   = var.ussd_table
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.audit.email}"

  depends_on = [google_bigquery_table.source]
}

# ... the transactions, joined to the operations by transaction_ref ...
resource "google_bigquery_table_iam_member" "audit_reads_transactions" {
  project    = var.project_id
  dataset_id = var.source_dataset
  table_id   = var.transactions_table
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.audit.email}"

  depends_on = [google_bigquery_table.source]
}

# ... the services, for the service name and category of each transaction ...
resource "google_bigquery_table_iam_member" "audit_reads_services" {
  project    = var.project_id
  dataset_id = var.source_dataset
  table_id   = var.services_table
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.audit.email}"

  depends_on = [google_bigquery_table.source]
}

# ... and the agents, for the agent name and region of each operation.
resource "google_bigquery_table_iam_member" "audit_reads_agents" {
  project    = var.project_id
  dataset_id = var.source_dataset
  table_id   = var.agents_table
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.audit.email}"

  depends_on = [google_bigquery_table.source]
}

# Reads consolidated_table, the side under audit; it never writes it (repairs go through publishOps).
resource "google_bigquery_table_iam_member" "audit_reads_consolidated" {
  project    = var.project_id
  dataset_id = google_bigquery_table.consolidated.dataset_id
  table_id   = google_bigquery_table.consolidated.table_id
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.audit.email}"
}

# Appends one row per audited day to the audit table: granted on that table alone.
resource "google_bigquery_table_iam_member" "audit_writes_audit_table" {
  project    = var.project_id
  dataset_id = google_bigquery_table.audit.dataset_id
  table_id   = google_bigquery_table.audit.table_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.audit.email}"
}

# Reads the watermark and the open batches (to leave batches in flight to the chain) and
# replaces audit/last.json, which `consolidate status` shows; replacing needs delete as well
# as create, which objectUser has.
resource "google_storage_bucket_iam_member" "audit_uses_state" {
  bucket = google_storage_bucket.state.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.audit.email}"
}

# With audit_repair, POSTs the differing operations to publishOps as a replay: invoker on that
# function's Cloud Run service only, and only when repairs are on.
resource "google_cloud_run_v2_service_iam_member" "audit_invokes_publish_ops" {
  count = var.audit_repair ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.publish_ops.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.audit.email}"

  lifecycle {
    # A function's outgoing call is internal traffic only through a VPC network, which these
    # functions do not use: an internal-only publishOps would refuse every replay.
    precondition {
      condition     = var.publish_ops_ingress == "ALLOW_ALL"
      error_message = "audit_repair = true needs publish_ops_ingress = \"ALLOW_ALL\": the audit function calls publishOps from outside its network (IAM still applies)."
    }
  }
}

# Cloud Scheduler calls the audit with its OIDC token: invoker on the audit's service only.
resource "google_cloud_run_v2_service_iam_member" "scheduler_invokes_audit" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.audit.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler.email}"
}

# --- Outputs ---------------------------------------------------------------------------------

output "audit_uri" {
  description = "URI of the audit function: POST {\"from\": \"YYYY-MM-DD\", \"to\": \"YYYY-MM-DD\", \"repair\": false} with an identity holding roles/run.invoker on it."
  value       = google_cloudfunctions2_function.audit.service_config[0].uri
}

output "audit_table_id" {
  description = "The audit table, as project.dataset.table."
  value       = "${var.project_id}.${google_bigquery_table.audit.dataset_id}.${google_bigquery_table.audit.table_id}"
}

output "audit_scheduler_job" {
  description = "Cloud Scheduler job running the audit; `gcloud scheduler jobs run <name> --location <region>` runs one now."
  value       = google_cloud_scheduler_job.audit.name
}
