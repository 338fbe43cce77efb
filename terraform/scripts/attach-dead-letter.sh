#!/usr/bin/env bash
# Sets the dead-letter policy on the Pub/Sub subscription behind one Eventarc trigger, and lets
# the Pub/Sub service agent acknowledge on it (which moving a message to the dead-letter topic
# requires). Terraform runs it after deploying each event-triggered function (pubsub.tf); it is
# idempotent, so running it again by hand is harmless.
#
# Environment:
#   TRIGGER                projects/<project>/locations/<location>/triggers/<trigger>
#   DEAD_LETTER_TOPIC      projects/<project>/topics/<topic>
#   MAX_DELIVERY_ATTEMPTS  deliveries before an event is dead-lettered (5 to 100)
#   PUBSUB_SERVICE_AGENT   service-<project number>@gcp-sa-pubsub.iam.gserviceaccount.com
#   RETRY_SECONDS          base wait between looks at a trigger still being wired (default 5)
set -euo pipefail

: "${TRIGGER:?TRIGGER is required}"
: "${DEAD_LETTER_TOPIC:?DEAD_LETTER_TOPIC is required}"
: "${MAX_DELIVERY_ATTEMPTS:?MAX_DELIVERY_ATTEMPTS is required}"
: "${PUBSUB_SERVICE_AGENT:?PUBSUB_SERVICE_AGENT is required}"
retry_seconds="${RETRY_SECONDS:-5}"

if [[ ! "$TRIGGER" =~ ^projects/([^/]+)/locations/([^/]+)/triggers/([^/]+)$ ]]; then
  echo "attach-dead-letter: not an Eventarc trigger name: $TRIGGER" >&2
  exit 2
fi
project="${BASH_REMATCH[1]}"
location="${BASH_REMATCH[2]}"
trigger="${BASH_REMATCH[3]}"

if [[ ! "$MAX_DELIVERY_ATTEMPTS" =~ ^[0-9]+$ ]] || ((MAX_DELIVERY_ATTEMPTS < 5 || MAX_DELIVERY_ATTEMPTS > 100)); then
  echo "attach-dead-letter: MAX_DELIVERY_ATTEMPTS must be 5 to 100, got $MAX_DELIVERY_ATTEMPTS" >&2
  exit 2
fi

# Right after a deployment, Eventarc may still be creating the trigger's transport.
subscription=""
for attempt in 1 2 3 4 5 6; do
  # A failure (the trigger still being wired, a grant not yet propagated) is retried like an empty answer.
  subscription="$(gcloud eventarc triggers describe "$trigger" --project="$project" --location="$location" --format='value(transport.pubsub.subscription)' 2>/dev/null || true)"
  [[ -n "$subscription" ]] && break
  sleep $((attempt * retry_seconds))
done

if [[ -z "$subscription" ]]; then
  # The trigger still delivers (and retries) without a dead-letter topic: say so, do not fail.
  echo "attach-dead-letter: WARNING: trigger $TRIGGER reports no Pub/Sub subscription; no dead-letter policy was set on it" >&2
  exit 0
fi

gcloud pubsub subscriptions update "$subscription" --project="$project" \
  --dead-letter-topic="$DEAD_LETTER_TOPIC" \
  --max-delivery-attempts="$MAX_DELIVERY_ATTEMPTS" \
  --quiet

gcloud pubsub subscriptions add-iam-policy-binding "$subscription" --project="$project" \
  --member="serviceAccount:$PUBSUB_SERVICE_AGENT" \
  --role="roles/pubsub.subscriber" \
  --quiet >/dev/null

echo "attach-dead-letter: $subscription dead-letters to $DEAD_LETTER_TOPIC after $MAX_DELIVERY_ATTEMPTS deliveries"
