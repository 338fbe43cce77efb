# Pub/Sub: the two topics of the chain, the push subscriptions that deliver them to their
# functions, and a dead-letter topic for the messages the functions cannot handle.

resource "google_pubsub_topic" "ids" {
  name = var.ids_topic

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic" "batches" {
  name = var.batches_topic

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic" "dead_letter" {
  name = var.dead_letter_topic

  depends_on = [google_project_service.enabled]
}

# A pull subscription on the dead-letter topic, so that dead letters are kept (a week) and can be
# read: gcloud pubsub subscriptions pull <name> --limit 10
resource "google_pubsub_subscription" "dead_letter_inspect" {
  name                       = "${var.dead_letter_topic}-inspect"
  topic                      = google_pubsub_topic.dead_letter.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  retain_acked_messages      = false

  # Never expire for inactivity: it is read rarely, by hand.
  expiration_policy {
    ttl = ""
  }
}

# The deliveries to collectIds and launchDataflow: one push subscription per function, managed
# here so that its dead-letter policy is real configuration (Terraform sees and repairs drift).
# Pub/Sub POSTs each message to the function's URL with an OIDC token of the triggers' account;
# the Functions Framework turns that push body into the same CloudEvent an Eventarc trigger
# would deliver (test/functions/push-delivery.test.ts), so the handlers are unchanged. The path
# names the topic, which the Functions Framework reads into the event's source. Pub/Sub push is
# internal traffic for a service of the same project, so the functions stay internal only.
resource "google_pubsub_subscription" "push" {
  for_each = {
    collectIds = {
      topic   = google_pubsub_topic.ids
      uri     = google_cloudfunctions2_function.collect_ids.service_config[0].uri
      timeout = google_cloudfunctions2_function.collect_ids.service_config[0].timeout_seconds
    }
    launchDataflow = {
      topic   = google_pubsub_topic.batches
      uri     = google_cloudfunctions2_function.launch_dataflow.service_config[0].uri
      timeout = google_cloudfunctions2_function.launch_dataflow.service_config[0].timeout_seconds
    }
  }

  name  = "${var.name_prefix}-${each.key}-push"
  topic = each.value.topic.id

  # Pub/Sub waits this long for the function's answer before it counts the delivery as failed:
  # at least the function's timeout, so a slow run is not delivered a second time while it works.
  ack_deadline_seconds       = min(600, each.value.timeout + 30)
  message_retention_duration = "604800s"
  retain_acked_messages      = false

  # Never expire for inactivity: a quiet week must not delete the chain's wiring.
  expiration_policy {
    ttl = ""
  }

  # A failed delivery (an exception, a timeout) is retried with backoff ...
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  # ... and after max_delivery_attempts it goes to the dead-letter topic, where the inspect
  # subscription keeps it a week.
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  push_config {
    push_endpoint = "${each.value.uri}/projects/${var.project_id}/topics/${each.value.topic.name}"

    oidc_token {
      service_account_email = google_service_account.triggers.email
      audience              = each.value.uri
    }
  }

  # The Pub/Sub agent signs the tokens (its grant must have propagated) and the triggers' account
  # must be allowed to call the functions before the first message is pushed.
  depends_on = [
    time_sleep.trigger_grants,
    google_cloud_run_v2_service_iam_member.triggers_invoke_collect_ids,
    google_cloud_run_v2_service_iam_member.triggers_invoke_launch_dataflow,
  ]
}
