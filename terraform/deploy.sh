#!/usr/bin/env bash
# Compiles the package (the same tsc run Cloud Build does, so a type error stops here rather than
# in a remote build), then initializes and applies this configuration. Arguments go to
# `terraform apply`, e.g.:
#   terraform/deploy.sh -var project_id=my-project -var region=europe-west1
# Then terraform/check.sh runs a cycle and says whether the chain works.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
command -v terraform >/dev/null 2>&1 || { echo "deploy: terraform is not on the PATH" >&2; exit 2; }

(cd "$here/.." && npm run build)
terraform -chdir="$here" init -input=false
terraform -chdir="$here" apply "$@"
