# Inputs. Names that configure the functions mirror the variables of shared/config.ts (same
# defaults, same accepted values), so a value that passes here also passes the functions'
# start-up check.

# --- Where -----------------------------------------------------------------------------------

variable "project_id" {
  type        = string
  nullable    = false
  description = "Google Cloud project that receives everything (GCP_PROJECT)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID: 6 to 30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  type        = string
  nullable    = false
  description = "Region of the functions, the buckets, the Scheduler job, the Dataflow jobs and the Yaml_Template (REGION)."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]{1,2}$", var.region))
    error_message = "region must be a region such as europe-west1 or europe-west10."
  }
}

variable "bigquery_location" {
  type        = string
  nullable    = false
  default     = "EU"
  description = "Location of the datasets and the BigQuery jobs (BIGQUERY_LOCATION). The source dataset must be there too, and the region's buckets must be loadable from it (a region inside the multi-region, or the region itself)."

  validation {
    condition     = can(regex("^([A-Z]{2}|[a-z]+-[a-z]+[0-9]+)$", var.bigquery_location))
    error_message = "bigquery_location must be a multi-region such as EU or US, or a region such as europe-west1."
  }
}

variable "name_prefix" {
  type        = string
  nullable    = false
  default     = "ussd"
  description = "Prefix of the functions, service accounts, Scheduler job and default bucket names, so that two deployments can share a project."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,8}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 2 to 10 lowercase letters, digits or hyphens, starting with a letter (service account IDs are at most 30 characters)."
  }
}

variable "labels" {
  type        = map(string)
  nullable    = false
  default     = {}
  description = "Labels added to every resource that takes labels (besides app = ussd-consolidation)."

  validation {
    condition = alltrue([
      for key, value in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", key)) && can(regex("^[a-z0-9_-]{0,63}$", value))
    ])
    error_message = "labels keys must match [a-z][a-z0-9_-]{0,62} and values [a-z0-9_-]{0,63}."
  }
}

# --- State and pipeline files ----------------------------------------------------------------

variable "state_bucket" {
  type        = string
  nullable    = false
  default     = ""
  description = "Name of the state bucket holding the watermark, the batches and the pipeline file (STATE_BUCKET); empty means <project_id>-<name_prefix>-state."

  validation {
    condition     = var.state_bucket == "" || can(regex("^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", var.state_bucket))
    error_message = "state_bucket must be empty or a bucket name: 3 to 63 lowercase letters, digits, dots, hyphens or underscores."
  }
}

variable "batch_retention_days" {
  type        = number
  nullable    = false
  default     = 30
  description = "Days a batch's objects (batches/ in the state bucket) are kept before the lifecycle rule deletes them; their replaced versions go one day after they are replaced."

  validation {
    condition     = var.batch_retention_days == floor(var.batch_retention_days) && var.batch_retention_days >= 1 && var.batch_retention_days <= 3650
    error_message = "batch_retention_days must be a whole number of days from 1 to 3650."
  }
}

variable "noncurrent_version_days" {
  type        = number
  nullable    = false
  default     = 7
  description = "Days a replaced version of any state object (watermark, lease, open-batch markers, batch states) is kept for an operator to look back at, before the lifecycle rule deletes it."

  validation {
    condition     = var.noncurrent_version_days == floor(var.noncurrent_version_days) && var.noncurrent_version_days >= 1 && var.noncurrent_version_days <= 365
    error_message = "noncurrent_version_days must be a whole number of days from 1 to 365."
  }
}

variable "watermark_object" {
  type        = string
  nullable    = false
  default     = "last_timestamp.txt"
  description = "Object of the state bucket holding the watermark, a plain RFC 3339 timestamp (WATERMARK_OBJECT)."

  validation {
    condition     = can(regex("^[^\\r\\n#\\[\\]*?]+$", var.watermark_object)) && !startswith(var.watermark_object, "batches/")
    error_message = "watermark_object must be an object name without newlines, #, [, ], * or ?, and outside batches/ (the lifecycle rule deletes batches/)."
  }
}

variable "initial_watermark" {
  type        = string
  nullable    = false
  description = "Where the first run starts while the watermark object does not exist (INITIAL_WATERMARK): an RFC 3339 timestamp, or \"beginning\" for the whole history, read max_window at a time. No default: the first run must not read the whole history by accident."

  validation {
    condition     = var.initial_watermark == "beginning" || (can(regex("^[0-9]{4}-[0-9]{2}-[0-9]{2}T", var.initial_watermark)) && can(timeadd(var.initial_watermark, "0s")))
    error_message = "initial_watermark must be an RFC 3339 timestamp such as 2026-01-01T00:00:00Z, or \"beginning\"."
  }
}

# --- BigQuery --------------------------------------------------------------------------------

variable "source_dataset" {
  type        = string
  nullable    = false
  default     = "main"
  description = "Dataset of the source tables, in project_id and bigquery_location (SOURCE_DATASET). It is neither created nor destroyed here unless create_source_tables is true."

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]{0,1023}$", var.source_dataset))
    error_message = "source_dataset must be a plain identifier (letters, digits, _)."
  }
}

variable "ussd_table" {
  type        = string
  nullable    = false
  default     = "ussd_operations"
  description = "USSD operations table in source_dataset (USSD_TABLE)."

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]{0,1023}$", var.ussd_table))
    error_message = "ussd_table must be a plain identifier (letters, digits, _)."
  }
}

variable "transactions_table" {
  type        = string
  nullable    = false
  default     = "transactiongu"
  description = "Back-end transactions table in source_dataset (TRANSACTIONS_TABLE)."

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]{0,1023}$", var.transactions_table))
    error_message = "transactions_table must be a plain identifier (letters, digits, _)."
  }
}

variable "services_table" {
  type        = string
  nullable    = false
  default     = "services"
  description = "Services reference table in source_dataset (SERVICES_TABLE)."

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]{0,1023}$", var.services_table))
    error_message = "services_table must be a plain identifier (letters, digits, _)."
  }
}

variable "agents_table" {
  type        = string
  nullable    = false
  default     = "agents"
  description = "Agents reference table in source_dataset (AGENTS_TABLE)."

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]{0,1023}$", var.agents_table))
    error_message = "agents_table must be a plain identifier (letters, digits, _)."
  }
}

variable "create_source_tables" {
  type        = bool
  nullable    = false
  default     = false
  description = "For a fresh test project only: create source_dataset and the four source tables, empty, from shared/schema/*.json (and destroy them with the rest). Leave false where the tables exist."

  validation {
    condition     = contains([true, false], var.create_source_tables)
    error_message = "create_source_tables must be true or false."
  }
}

variable "consolidated_dataset" {
  type        = string
  nullable    = false
  default     = "consolidated_dataset"
  description = "Dataset of the consolidated table, created here (CONSOLIDATED_DATASET)."

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]{0,1023}$", var.consolidated_dataset))
    error_message = "consolidated_dataset must be a plain identifier (letters, digits, _)."
  }
}

variable "consolidated_table" {
  type        = string
  nullable    = false
  default     = "consolidated_table"
  description = "The consolidated table, created here from shared/schema/consolidated_table.json (CONSOLIDATED_TABLE)."

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]{0,1023}$", var.consolidated_table))
    error_message = "consolidated_table must be a plain identifier (letters, digits, _)."
  }
}

variable "staging_dataset" {
  type        = string
  nullable    = false
  default     = "consolidation_staging"
  description = "Dataset of the per-batch IDs, parameters and enriched tables, created here (STAGING_DATASET)."

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]{0,1023}$", var.staging_dataset))
    error_message = "staging_dataset must be a plain identifier (letters, digits, _)."
  }
}

variable "staging_table_expiration_hours" {
  type        = number
  nullable    = false
  default     = 24
  description = "Default expiration of the staging dataset's tables. mergeOnComplete drops a batch's tables once merged; this removes those of batches that never merge."

  validation {
    condition     = var.staging_table_expiration_hours == floor(var.staging_table_expiration_hours) && var.staging_table_expiration_hours >= 1 && var.staging_table_expiration_hours <= 720
    error_message = "staging_table_expiration_hours must be a whole number of hours from 1 (BigQuery's minimum) to 720."
  }
}

variable "protect_data" {
  type        = bool
  nullable    = false
  default     = true
  description = "Deletion protection of consolidated_table and of the state bucket's content. Set to false and apply before a `terraform destroy` that should delete them."

  validation {
    condition     = contains([true, false], var.protect_data)
    error_message = "protect_data must be true or false."
  }
}

# --- Pub/Sub ---------------------------------------------------------------------------------

variable "ids_topic" {
  type        = string
  nullable    = false
  default     = "ussd-operations-topic"
  description = "Topic of the ID chunks and seals, publishOps -> collectIds (IDS_TOPIC)."

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$", var.ids_topic)) && !startswith(var.ids_topic, "goog")
    error_message = "ids_topic must be a Pub/Sub topic name: 3 to 255 characters, starting with a letter, not with goog."
  }
}

variable "batches_topic" {
  type        = string
  nullable    = false
  default     = "consolidation-batches"
  description = "Topic announcing complete batches, collectIds -> launchDataflow (BATCHES_TOPIC)."

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$", var.batches_topic)) && !startswith(var.batches_topic, "goog")
    error_message = "batches_topic must be a Pub/Sub topic name: 3 to 255 characters, starting with a letter, not with goog."
  }
}

variable "dead_letter_topic" {
  type        = string
  nullable    = false
  default     = "consolidation-dead-letter"
  description = "Topic receiving the events that the three event-triggered functions failed to handle max_delivery_attempts times; a pull subscription of the same name plus -inspect keeps them for a week."

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9._~+%-]{2,246}$", var.dead_letter_topic)) && !startswith(var.dead_letter_topic, "goog")
    error_message = "dead_letter_topic must be a Pub/Sub topic name of at most 247 characters (the subscription adds -inspect), starting with a letter, not with goog."
  }
}

variable "max_delivery_attempts" {
  type        = number
  nullable    = false
  default     = 10
  description = "Deliveries of one event to a function before it goes to the dead-letter topic."

  validation {
    condition     = var.max_delivery_attempts == floor(var.max_delivery_attempts) && var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be a whole number from 5 to 100 (Pub/Sub's limits)."
  }
}

variable "chunk_size" {
  type        = number
  nullable    = false
  default     = 1000
  description = "Operation IDs per message on the IDs topic (CHUNK_SIZE)."

  validation {
    condition     = var.chunk_size == floor(var.chunk_size) && var.chunk_size >= 1 && var.chunk_size <= 100000
    error_message = "chunk_size must be a whole number from 1 to 100000."
  }
}

variable "publish_concurrency" {
  type        = number
  nullable    = false
  default     = 16
  description = "Chunk messages publishOps keeps in flight at once, which bounds its memory (PUBLISH_CONCURRENCY)."

  validation {
    condition     = var.publish_concurrency == floor(var.publish_concurrency) && var.publish_concurrency >= 1 && var.publish_concurrency <= 1000
    error_message = "publish_concurrency must be a whole number from 1 to 1000."
  }
}

# --- The window ------------------------------------------------------------------------------

variable "lookback" {
  type        = string
  nullable    = false
  default     = "15m"
  description = "Margin re-read before the watermark to catch late rows (LOOKBACK), e.g. 90s, 15m, 2h."

  validation {
    condition     = can(regex("^[0-9]+(ms|s|m|h|d)$", var.lookback))
    error_message = "lookback must be a duration such as 90s, 15m or 2h."
  }
}

variable "safety_lag" {
  type        = string
  nullable    = false
  default     = "2m"
  description = "The window ends this long before now, leaving rows still being written to the next run (SAFETY_LAG)."

  validation {
    condition     = can(regex("^[0-9]+(ms|s|m|h|d)$", var.safety_lag))
    error_message = "safety_lag must be a duration such as 90s, 2m or 1h."
  }
}

variable "max_window" {
  type        = string
  nullable    = false
  default     = ""
  description = "Longest window one batch covers when catching up; 0s means no limit, empty the functions' default of 6h (MAX_WINDOW)."

  validation {
    condition     = var.max_window == "" || can(regex("^[0-9]+(ms|s|m|h|d)$", var.max_window))
    error_message = "max_window must be empty or a duration such as 0s, 6h or 1d."
  }
}

variable "stuck_after" {
  type        = string
  nullable    = false
  default     = "15m"
  description = "A batch that has not moved for this long is repaired by the reconciler at the start of the next publishOps run (STUCK_AFTER)."

  # The functions refuse a STUCK_AFTER under a minute at start-up (shared/config.ts): refused
  # here too, so such a value fails the plan instead of every function. The pattern accepts the
  # durations the functions read (ms, s, m, h, d) from one minute up: 60000ms, 60s, 1m, 1h, 1d.
  validation {
    condition     = can(regex("^0*(([1-9][0-9]*(m|h|d))|(([6-9][0-9]|[1-9][0-9]{2,})s)|(([6-9][0-9]{4}|[1-9][0-9]{5,})ms))$", var.stuck_after))
    error_message = "stuck_after must be a duration of at least one minute, such as 15m, 90s or 1h."
  }
}

variable "max_attempts" {
  type        = number
  nullable    = false
  default     = 3
  description = "Dataflow attempts per batch before the reconciler marks it FAILED for good and logs it at ERROR (MAX_ATTEMPTS)."

  validation {
    condition     = var.max_attempts == floor(var.max_attempts) && var.max_attempts >= 1 && var.max_attempts <= 20
    error_message = "max_attempts must be a whole number from 1 to 20."
  }
}

variable "replay_max_ids" {
  type        = number
  nullable    = false
  default     = 50000
  description = "Most operation IDs one replay request to publishOps may list (REPLAY_MAX_IDS)."

  validation {
    condition     = var.replay_max_ids == floor(var.replay_max_ids) && var.replay_max_ids >= 1 && var.replay_max_ids <= 1000000
    error_message = "replay_max_ids must be a whole number from 1 to 1,000,000."
  }
}

# --- Dataflow --------------------------------------------------------------------------------

variable "template_path" {
  type        = string
  nullable    = false
  default     = ""
  description = "Flex Template spec (TEMPLATE_PATH); empty means Google's gs://dataflow-templates-<region>/latest/flex/Yaml_Template."

  validation {
    condition     = var.template_path == "" || can(regex("^gs://[a-z0-9][a-z0-9._-]+/.+$", var.template_path))
    error_message = "template_path must be empty or a gs:// object path."
  }
}

variable "dataflow_max_workers" {
  type        = number
  nullable    = false
  default     = 4
  description = "Upper bound of Dataflow workers per job (DATAFLOW_MAX_WORKERS); a batch of a few thousand operations runs on one."

  validation {
    condition     = var.dataflow_max_workers == floor(var.dataflow_max_workers) && var.dataflow_max_workers >= 1 && var.dataflow_max_workers <= 1000
    error_message = "dataflow_max_workers must be a whole number from 1 to 1000."
  }
}

# --- Functions -------------------------------------------------------------------------------

variable "function_runtime" {
  type        = string
  nullable    = false
  default     = "nodejs22"
  description = "Cloud Run functions runtime of the four functions: nodejs22 or newer (Node.js 20 was decommissioned on Cloud Run functions on 2026-10-30)."

  validation {
    condition     = can(regex("^nodejs(2[2-9]|[3-9][0-9]|[1-9][0-9]{2,})$", var.function_runtime))
    error_message = "function_runtime must be nodejs22 or newer (nodejs20 is decommissioned)."
  }
}

variable "images_kept" {
  type        = number
  nullable    = false
  default     = 3
  description = "Images of each function kept in the Artifact Registry repository (the newest ones, so a rollback stays possible); older ones are deleted after image_retention_days."

  validation {
    condition     = var.images_kept == floor(var.images_kept) && var.images_kept >= 1 && var.images_kept <= 100
    error_message = "images_kept must be a whole number from 1 to 100."
  }
}

variable "image_retention_days" {
  type        = number
  nullable    = false
  default     = 14
  description = "Days an image of a function build is kept in the Artifact Registry repository unless it is among the images_kept newest."

  validation {
    condition     = var.image_retention_days == floor(var.image_retention_days) && var.image_retention_days >= 1 && var.image_retention_days <= 3650
    error_message = "image_retention_days must be a whole number of days from 1 to 3650."
  }
}

variable "publish_ops_ingress" {
  type        = string
  nullable    = false
  default     = "ALLOW_INTERNAL_ONLY"
  description = "Network ingress of publishOps. ALLOW_INTERNAL_ONLY admits Cloud Scheduler of the same project (internal traffic) and nothing from outside; ALLOW_ALL also lets an operator holding roles/run.invoker call it from anywhere (IAM still applies, it is never public). The three event-triggered functions are always internal only."

  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY"], var.publish_ops_ingress)
    error_message = "publish_ops_ingress must be ALLOW_ALL or ALLOW_INTERNAL_ONLY."
  }
}

variable "publish_ops_timeout_seconds" {
  type        = number
  nullable    = false
  default     = 900
  description = "Timeout of publishOps, also the Scheduler job's attempt deadline. A cycle takes seconds; a catch-up after an outage streams many more IDs."

  validation {
    condition     = var.publish_ops_timeout_seconds == floor(var.publish_ops_timeout_seconds) && var.publish_ops_timeout_seconds >= 60 && var.publish_ops_timeout_seconds <= 1800
    error_message = "publish_ops_timeout_seconds must be a whole number from 60 to 1800 (Cloud Scheduler's longest attempt deadline)."
  }
}

variable "log_level" {
  type        = string
  nullable    = false
  default     = "INFO"
  description = "Lowest severity the functions log (LOG_LEVEL)."

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

# --- Scheduler -------------------------------------------------------------------------------

variable "schedule" {
  type        = string
  nullable    = false
  default     = "*/20 * * * *"
  description = "Cron schedule of the Cloud Scheduler job calling publishOps."

  validation {
    condition     = can(regex("^\\S+(\\s+\\S+){4}$", trimspace(var.schedule)))
    error_message = "schedule must be a five-field cron expression such as */20 * * * *."
  }
}

variable "time_zone" {
  type        = string
  nullable    = false
  default     = "Etc/UTC"
  description = "Time zone (tz database name) the schedule is read in."

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$", var.time_zone))
    error_message = "time_zone must be a tz database name such as Etc/UTC or Africa/Dakar."
  }
}

# --- First apply -----------------------------------------------------------------------------

variable "iam_propagation_wait" {
  type        = string
  nullable    = false
  default     = "90s"
  description = "How long the apply waits after creating the service agents and the grants the triggers check, before the resources that use them (IAM changes take up to a few minutes to be seen)."

  validation {
    condition     = can(regex("^[0-9]+s$", var.iam_propagation_wait)) && try(tonumber(trimsuffix(var.iam_propagation_wait, "s")) <= 600, false)
    error_message = "iam_propagation_wait must be a number of seconds such as 90s, at most 600s."
  }
}
