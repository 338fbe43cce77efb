# Three buckets, each with one job, so that each identity gets exactly the bucket it needs:
#   state    the watermark, the lease and the batches (the functions write it)
#   dataflow the Dataflow jobs' temp files (the Dataflow workers)
#   source   what only the deployer writes: the functions' source archives and the pipeline file
#            the Dataflow jobs run (read by Cloud Functions and by the Dataflow workers)

resource "google_storage_bucket" "state" {
  name                        = local.state_bucket
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.protect_data

  # Every state write is conditional on the object's generation; versions also keep the
  # watermark's and the batch states' history for an operator to look back at.
  versioning {
    enabled = true
  }

  # Old batches go: after batch_retention_days a batch's objects become noncurrent...
  lifecycle_rule {
    condition {
      age            = var.batch_retention_days
      matches_prefix = ["batches/"]
    }
    action {
      type = "Delete"
    }
  }

  # ...and noncurrent versions under batches/ (replaced state.json files, deleted batches) are
  # removed a day later.
  lifecycle_rule {
    condition {
      with_state                 = "ARCHIVED"
      days_since_noncurrent_time = 1
      matches_prefix             = ["batches/"]
    }
    action {
      type = "Delete"
    }
  }

  # Every write of the watermark, the lease and the open-batch markers leaves a noncurrent
  # version behind: hundreds a day. Replaced versions of any object go after
  # noncurrent_version_days. Live objects outside batches/ are never touched by a rule.
  lifecycle_rule {
    condition {
      with_state                 = "ARCHIVED"
      days_since_noncurrent_time = var.noncurrent_version_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

# The pipeline file the Dataflow jobs run, in the source bucket: only the deployer writes there,
# so no function's account can change the code that runs as the Dataflow worker. PIPELINE_FILE
# points here. A change to the file uploads it again.
resource "google_storage_bucket_object" "pipeline" {
  bucket       = google_storage_bucket.source.name
  name         = "pipeline/consolidation.yaml"
  source       = "${local.repo_root}/shared/pipeline/consolidation.yaml"
  content_type = "application/yaml"
}

resource "google_storage_bucket" "dataflow" {
  name                        = local.dataflow_bucket
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  # Temp and staging files are useless once their job has ended.
  lifecycle_rule {
    condition {
      age = 7
    }
    action {
      type = "Delete"
    }
  }

  # No soft-delete copies of throw-away files.
  soft_delete_policy {
    retention_duration_seconds = 0
  }

  depends_on = [google_project_service.enabled]
}

resource "google_storage_bucket" "source" {
  name                        = local.source_bucket
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  depends_on = [google_project_service.enabled]
}

# The functions' source: what Cloud Build needs to run `npm ci` and `npm run gcp-build` (tsc
# over functions/ and shared/, see tsconfig.json), and what the compiled code reads at run time
# (shared/schema/*.json, found from dist/ by shared/schema/index.ts). dist/ is not shipped:
# Cloud Build compiles it, so the archive never holds a stale build.
locals {
  source_patterns = ["package.json", "package-lock.json", "tsconfig.json", "functions/**", "shared/**"]
  source_files    = sort(distinct(flatten([for pattern in local.source_patterns : tolist(fileset(local.repo_root, pattern))])))

  # A digest of the files' names and contents: it names the archive, so the object name (and
  # with it the functions) changes exactly when the code does.
  source_digest = sha256(join("\n", [for file in local.source_files : "${file} ${filesha256("${local.repo_root}/${file}")}"]))
}

data "archive_file" "function_source" {
  type             = "zip"
  output_path      = "${path.module}/.build/function-source-${substr(local.source_digest, 0, 16)}.zip"
  output_file_mode = "0644"

  dynamic "source" {
    for_each = local.source_files
    content {
      filename = source.value
      content  = file("${local.repo_root}/${source.value}")
    }
  }
}

resource "google_storage_bucket_object" "function_source" {
  bucket       = google_storage_bucket.source.name
  name         = "functions/source-${local.source_digest}.zip"
  source       = data.archive_file.function_source.output_path
  content_type = "application/zip"

  # A new digest is a new object: upload it and point the functions at it before the old one is
  # deleted, so that the functions never refer to a missing archive, even when the apply stops
  # half-way.
  lifecycle {
    create_before_destroy = true
  }
}
