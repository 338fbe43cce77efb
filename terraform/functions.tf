# The four functions: one package (functions/index.ts registers all four entry points), built by
# Cloud Build from the source archive, as the build service account, into the Terraform-managed
# image repository (artifacts.tf), each deployed with its own entry point, identity and trigger.
#
# Sizing, the same reasoning for all four: memory 512Mi (0.33 vCPU) holds Node.js and the
# BigQuery, Storage, Pub/Sub and Dataflow clients that every instance loads at start-up, with
# room to spare; publishOps's own memory is bounded by PUBLISH_CONCURRENCY x CHUNK_SIZE IDs.
# Instances scale to zero between cycles. Each request is handled alone (concurrency 1, the
# default below one vCPU). Timeouts and instance caps follow what each function waits for.

# publishOps, HTTP, called by Cloud Scheduler every 20 minutes (scheduler.tf).
resource "google_cloudfunctions2_function" "publish_ops" {
  name        = "${var.name_prefix}-publish-ops"
  location    = var.region
  description = "Publishes the IDs of the operations changed since the watermark, in chunks, then seals the batch."

  build_config {
    runtime         = var.function_runtime
    entry_point     = "publishOps"
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
    available_memory = "512Mi"
    # Streams the window's IDs from BigQuery while publishing them: seconds per cycle, longer
    # when catching up after an outage. Cloud Scheduler waits as long (its attempt deadline).
    timeout_seconds = var.publish_ops_timeout_seconds
    # One run at a time: a second call while one runs gets 429 instead of racing for the
    # watermark (the generation check would refuse it anyway, after work done twice).
    max_instance_count             = 1
    min_instance_count             = 0
    ingress_settings               = var.publish_ops_ingress
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.publish_ops.email
    environment_variables          = local.function_environment
  }

  depends_on = [google_project_service.enabled, time_sleep.build_grants]
}

# collectIds, delivered the IDs topic's messages by a Terraform-managed push subscription
# (pubsub.tf), which carries the dead-letter policy an Eventarc trigger cannot.
resource "google_cloudfunctions2_function" "collect_ids" {
  name        = "${var.name_prefix}-collect-ids"
  location    = var.region
  description = "Stores each chunk of a batch once and announces the batch when the seal and every chunk are there."

  build_config {
    runtime         = var.function_runtime
    entry_point     = "collectIds"
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
    available_memory = "512Mi"
    # A chunk is one create-only write and one existence check; the last one also lists the
    # batch's chunks: well under a minute.
    timeout_seconds = 60
    # A catch-up batch of a million IDs is a thousand chunk messages; twenty instances store
    # them in parallel without crowding the bucket. Pub/Sub backs off when all are busy.
    max_instance_count             = 20
    min_instance_count             = 0
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.collect_ids.email
    environment_variables          = local.function_environment
  }

  depends_on = [google_project_service.enabled, time_sleep.build_grants]
}

# launchDataflow, delivered the batches topic's messages by a push subscription (pubsub.tf).
resource "google_cloudfunctions2_function" "launch_dataflow" {
  name        = "${var.name_prefix}-launch-dataflow"
  location    = var.region
  description = "Stages a complete batch's IDs as a table and launches its enrichment job (Beam YAML Flex Template)."

  build_config {
    runtime         = var.function_runtime
    entry_point     = "launchDataflow"
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
    available_memory = "512Mi"
    # Waits for a load job, a small CREATE TABLE AS and the template launch: usually under a
    # minute, five minutes leaves room for a busy BigQuery.
    timeout_seconds = 300
    # One message per batch, every 20 minutes; a few instances cover a catch-up.
    max_instance_count             = 5
    min_instance_count             = 0
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.launch_dataflow.email
    environment_variables          = local.function_environment
  }

  depends_on = [google_project_service.enabled, time_sleep.build_grants]
}

# mergeOnComplete, Eventarc trigger on the Dataflow job status changes of the region.
resource "google_cloudfunctions2_function" "merge_on_complete" {
  name        = "${var.name_prefix}-merge-on-complete"
  location    = var.region
  description = "On the end of an enrichment job, MERGEs the batch into the consolidated table (or records the failure)."

  build_config {
    runtime         = var.function_runtime
    entry_point     = "mergeOnComplete"
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
    available_memory = "512Mi"
    # Waits for the MERGE (and its retries on a concurrent update): the longest wait of the
    # chain; 540 s is the most an event-triggered function may take.
    timeout_seconds = 540
    # Every state change of every Dataflow job in the region arrives here; all but one per
    # batch are ignored within milliseconds. MERGEs into one table queue up in BigQuery anyway.
    max_instance_count             = 5
    min_instance_count             = 0
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.merge_on_complete.email
    environment_variables          = local.function_environment
  }

  event_trigger {
    # The job's region: Dataflow publishes a job's events where the job runs. The `job` filter
    # would take one exact job name, so the code filters on the job's labels instead.
    trigger_region        = var.region
    event_type            = "google.cloud.dataflow.job.v1beta3.statusChanged"
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.triggers.email
  }

  # Eventarc checks, when it creates the trigger, that its agent holds its role, that the
  # trigger's account may receive events and that the Pub/Sub agent may sign its tokens: all
  # granted, and given time to propagate, before.
  depends_on = [
    google_project_service.enabled,
    time_sleep.build_grants,
    time_sleep.service_agents,
    time_sleep.trigger_grants,
  ]
}
