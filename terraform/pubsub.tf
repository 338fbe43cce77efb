# Pub/Sub: the two topics of the chain, and a dead-letter topic for the events the functions
# cannot handle.

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

# The dead-letter policy of the three triggers. Each event trigger's subscription is created and
# named by Eventarc when its function is deployed, and neither the function nor the trigger
# resource exposes a dead-letter setting (hashicorp/terraform-provider-google#25069), so once the
# function exists a script looks the subscription up and sets the policy on it, and lets the
# Pub/Sub service agent acknowledge there (it must, to move a message to the dead-letter topic).
# It runs again whenever the function, its trigger, the topic or the attempt count changes,
# since a redeployment may recreate the subscription. It needs gcloud where terraform runs.
resource "terraform_data" "dead_letter_policy" {
  for_each = {
    collectIds = {
      trigger = google_cloudfunctions2_function.collect_ids.event_trigger[0].trigger
      updated = google_cloudfunctions2_function.collect_ids.update_time
    }
    launchDataflow = {
      trigger = google_cloudfunctions2_function.launch_dataflow.event_trigger[0].trigger
      updated = google_cloudfunctions2_function.launch_dataflow.update_time
    }
    mergeOnComplete = {
      trigger = google_cloudfunctions2_function.merge_on_complete.event_trigger[0].trigger
      updated = google_cloudfunctions2_function.merge_on_complete.update_time
    }
  }

  triggers_replace = [each.value.trigger, each.value.updated, google_pubsub_topic.dead_letter.id, var.max_delivery_attempts]

  provisioner "local-exec" {
    interpreter = ["/bin/bash"]
    command     = "${path.module}/scripts/attach-dead-letter.sh"
    environment = {
      TRIGGER               = each.value.trigger
      DEAD_LETTER_TOPIC     = google_pubsub_topic.dead_letter.id
      MAX_DELIVERY_ATTEMPTS = tostring(var.max_delivery_attempts)
      PUBSUB_SERVICE_AGENT  = local.pubsub_service_agent
    }
  }

  depends_on = [
    google_pubsub_topic_iam_member.pubsub_agent_publishes_dead_letters,
  ]
}
