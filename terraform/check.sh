#!/usr/bin/env bash
# Checks that the deployed chain runs, in one command: starts a cycle now (the Scheduler job),
# then waits until publishOps has moved the watermark and every batch it opened is closed
# (merged), failing at the first ERROR any function logs. Reads what it needs from the applied
# configuration's outputs. Exit 0: the chain ran a whole cycle; 1: it did not (the reason is
# printed); 2: a tool is missing.
#
#   terraform/check.sh                      # CHECK_TIMEOUT (s, default 1200), CHECK_INTERVAL (s, default 30)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
timeout="${CHECK_TIMEOUT:-1200}"
interval="${CHECK_INTERVAL:-30}"
for tool in terraform gcloud; do
  command -v "$tool" >/dev/null 2>&1 || { echo "check: $tool is not on the PATH" >&2; exit 2; }
done

output() { terraform -chdir="$here" output -raw "$1"; }
project="$(output project_id)"
region="$(output region)"
job="$(output scheduler_job)"
bucket="$(output state_bucket)"
watermark="$(output watermark_object)"
prefix="$(output name_prefix)"

started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "check: starting a cycle now ($job in $region, project $project)"
gcloud scheduler jobs run "$job" --location="$region" --project="$project" --quiet

errors_since() {
  gcloud logging read "resource.type=\"cloud_run_revision\" AND resource.labels.service_name:\"$prefix-\" AND severity>=ERROR AND timestamp>=\"$started\"" \
    --project="$project" --limit=5 --format='value(timestamp,resource.labels.service_name,jsonPayload.message)'
}

waited=0
while :; do
  errors="$(errors_since)"
  if [[ -n "$errors" ]]; then
    echo "check: FAILED: the functions logged errors since $started:" >&2
    echo "$errors" >&2
    exit 1
  fi
  # Both times as UTC "YYYY-MM-DDTHH:MM:SSZ", so that comparing them as strings compares instants.
  moved="$(gcloud storage objects describe "gs://$bucket/$watermark" --project="$project" --format='value(update_time.date("%Y-%m-%dT%H:%M:%SZ", tz=UTC))' 2>/dev/null || true)"
  open="$(gcloud storage ls "gs://$bucket/open/" --project="$project" 2>/dev/null || true)"
  if [[ -n "$moved" && ! "$moved" < "$started" && -z "$open" ]]; then
    echo "check: OK: the watermark moved at $moved and no batch is open: the cycle ran through"
    exit 0
  fi
  if ((waited >= timeout)); then
    echo "check: FAILED: after ${timeout}s the watermark moved at '${moved:-never}' and these batches are still open:" >&2
    echo "${open:-  (none)}" >&2
    exit 1
  fi
  sleep "$interval"
  waited=$((waited + interval))
done
