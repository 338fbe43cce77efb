output "project_id" {
  description = "The project everything was created in."
  value       = var.project_id
}

output "region" {
  description = "The region of the functions, buckets, Scheduler job and Dataflow jobs."
  value       = var.region
}

output "name_prefix" {
  description = "The prefix of the functions, service accounts and Scheduler job names."
  value       = var.name_prefix
}

output "watermark_object" {
  description = "The watermark object in the state bucket; check.sh watches it move."
  value       = var.watermark_object
}

output "function_uris" {
  description = "URI of each function's Cloud Run service, by entry point. Only publishOps is called over HTTP (by Cloud Scheduler, or by an operator holding roles/run.invoker)."
  value = {
    publishOps      = google_cloudfunctions2_function.publish_ops.service_config[0].uri
    collectIds      = google_cloudfunctions2_function.collect_ids.service_config[0].uri
    launchDataflow  = google_cloudfunctions2_function.launch_dataflow.service_config[0].uri
    mergeOnComplete = google_cloudfunctions2_function.merge_on_complete.service_config[0].uri
  }
}

output "publish_ops_uri" {
  description = "URI of publishOps, the one to POST to by hand: curl -X POST -H \"Authorization: Bearer $(gcloud auth print-identity-token)\" <uri>"
  value       = google_cloudfunctions2_function.publish_ops.service_config[0].uri
}

output "scheduler_job" {
  description = "Cloud Scheduler job starting a cycle; `gcloud scheduler jobs run <name> --location <region>` starts one now."
  value       = google_cloud_scheduler_job.publish_ops.name
}

output "ids_topic" {
  description = "Topic of the ID chunks and seals (IDS_TOPIC)."
  value       = google_pubsub_topic.ids.name
}

output "batches_topic" {
  description = "Topic of the complete batches (BATCHES_TOPIC)."
  value       = google_pubsub_topic.batches.name
}

output "dead_letter_topic" {
  description = "Topic of the events the functions failed to handle."
  value       = google_pubsub_topic.dead_letter.name
}

output "dead_letter_subscription" {
  description = "Pull subscription to read the dead letters: gcloud pubsub subscriptions pull <name> --limit 10"
  value       = google_pubsub_subscription.dead_letter_inspect.name
}

output "consolidated_table_id" {
  description = "The consolidated table, as project.dataset.table."
  value       = "${var.project_id}.${google_bigquery_table.consolidated.dataset_id}.${google_bigquery_table.consolidated.table_id}"
}

output "staging_dataset_id" {
  description = "The staging dataset, as project.dataset."
  value       = "${var.project_id}.${google_bigquery_dataset.staging.dataset_id}"
}

output "source_table_ids" {
  description = "The four source tables the chain reads, as project.dataset.table."
  value       = { for key, table in local.source_tables : key => "${var.project_id}.${var.source_dataset}.${table.table}" }
}

output "push_subscriptions" {
  description = "The push subscriptions delivering the two topics to collectIds and launchDataflow, by entry point (each dead-letters after max_delivery_attempts)."
  value       = { for entry_point, subscription in google_pubsub_subscription.push : entry_point => subscription.name }
}

output "image_repository" {
  description = "The Artifact Registry repository holding the functions' images, with its cleanup policies."
  value       = google_artifact_registry_repository.functions.id
}

output "state_bucket" {
  description = "The state bucket (STATE_BUCKET): watermark, lease, open/ and batches/."
  value       = google_storage_bucket.state.name
}

output "pipeline_file" {
  description = "The uploaded pipeline file (PIPELINE_FILE)."
  value       = local.function_environment.PIPELINE_FILE
}

output "dataflow_temp_location" {
  description = "Temp and staging location of the Dataflow jobs (DATAFLOW_TEMP_LOCATION)."
  value       = local.function_environment.DATAFLOW_TEMP_LOCATION
}

output "service_accounts" {
  description = "E-mail of each service account, by role in the chain."
  value = {
    publishOps      = google_service_account.publish_ops.email
    collectIds      = google_service_account.collect_ids.email
    launchDataflow  = google_service_account.launch_dataflow.email
    mergeOnComplete = google_service_account.merge_on_complete.email
    scheduler       = google_service_account.scheduler.email
    triggers        = google_service_account.triggers.email
    dataflowWorker  = google_service_account.dataflow_worker.email
    build           = google_service_account.build.email
  }
}

output "function_environment" {
  description = "The configuration the functions run with (their environment variables)."
  value       = local.function_environment
}
