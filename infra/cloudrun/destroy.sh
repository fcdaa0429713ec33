#!/usr/bin/env bash
# Remove what deploy.sh made on Google Cloud: the sweep's Cloud Scheduler
# job, the services (helios-sweeper, and helios-browser-worker if there is
# one), the Pub/Sub subscriptions, topics and bucket notification, the
# bucket bindings, the custom role, the service accounts and the Artifact
# Registry repository (with both images). The bucket and its videos are kept unless
# DELETE_BUCKET=1.
#
#   PROJECT=my-project REGION=us-central1 infra/cloudrun/destroy.sh
#   PROJECT=my-project REGION=us-central1 DELETE_BUCKET=1 infra/cloudrun/destroy.sh
#
# Inputs: PROJECT, REGION (required), BUCKET (default helios-renders-$PROJECT),
# SCHEDULER_REGION (default $REGION, as deploy.sh), DELETE_BUCKET (1 deletes
# the bucket and everything in it), GCLOUD (default gcloud). Safe to run
# again: what is already gone is skipped.
set -euo pipefail

GCLOUD=${GCLOUD:-gcloud}

die() { printf 'destroy.sh: %s\n' "$*" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*"; }

missing=()
[[ -n ${PROJECT:-} ]] || missing+=("PROJECT is not set (the Google Cloud project ID)")
[[ -n ${REGION:-} ]] || missing+=("REGION is not set (the region deploy.sh used)")
if ((${#missing[@]})); then
  die "$(printf '%s; ' "${missing[@]}")usage: PROJECT=my-project REGION=us-central1 $0"
fi
BUCKET=${BUCKET:-helios-renders-$PROJECT}
DELETE_BUCKET=${DELETE_BUCKET:-0}
SCHEDULER_REGION=${SCHEDULER_REGION:-$REGION}
[[ $PROJECT =~ ^[a-z][a-z0-9-]{4,28}[a-z0-9]$ ]] || die "PROJECT=$PROJECT: expected a project ID"
[[ $REGION =~ ^[a-z]+-[a-z]+[0-9]+$ ]] || die "REGION=$REGION: expected a region such as us-central1"
[[ $SCHEDULER_REGION =~ ^[a-z]+-[a-z]+[0-9]+$ ]] || die "SCHEDULER_REGION=$SCHEDULER_REGION: expected a region such as us-central1"
[[ $BUCKET =~ ^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$ ]] || die "BUCKET=$BUCKET: expected a bucket name"
[[ $DELETE_BUCKET == 0 || $DELETE_BUCKET == 1 ]] || die "DELETE_BUCKET=$DELETE_BUCKET: expected 0 or 1"
command -v "$GCLOUD" >/dev/null || die "$GCLOUD not found: install the Google Cloud CLI"

# The same names as deploy.sh.
TOPIC=helios-jobs
DEAD_TOPIC=helios-jobs-dead
DEAD_SUB=helios-jobs-dead-sub
PUSH_SUB=helios-jobs-push
SWEEP_JOB=helios-sweep
REPO=helios
ROLE_ID=heliosBucketLister
LISTER_ROLE=projects/$PROJECT/roles/$ROLE_ID
sa() { printf 'helios-%s@%s.iam.gserviceaccount.com' "$1" "$PROJECT"; }

# gc, ask, exists, lookup, gc_unless_absent, check_project: gcloud.sh.
# shellcheck source=infra/cloudrun/gcloud.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/gcloud.sh"

step "Project $PROJECT"
check_project
echo "  number $PROJECT_NUMBER"

# remove NAME DESCRIBE-ARGS... -- DELETE-ARGS...: delete if it is there.
remove() {
  local name=$1 describe=() arg
  shift
  while (($#)); do
    arg=$1
    shift
    [[ $arg == -- ]] && break
    describe+=("$arg")
  done
  if exists "${describe[@]}"; then gc "$@"; else echo "  $name: already gone"; fi
}

# The sweep first, so it does not call a service that is going away.
step "Cloud Scheduler job $SWEEP_JOB"
remove "$SWEEP_JOB" scheduler jobs describe "$SWEEP_JOB" --location="$SCHEDULER_REGION" \
  -- scheduler jobs delete "$SWEEP_JOB" --location="$SCHEDULER_REGION"

# Services next, so nothing is rendering while the rest goes. The browser
# worker whether or not the last deploy.sh made it (BROWSER_WORKER=0 leaves
# one from before in place).
step "Cloud Run services"
for service in helios-sweeper helios-orchestrator helios-worker helios-browser-worker helios-stitcher; do
  remove "$service" run services describe "$service" --region="$REGION" \
    -- run services delete "$service" --region="$REGION"
done

step "Pub/Sub subscriptions"
for sub in "$PUSH_SUB" "$DEAD_SUB"; do
  remove "$sub" pubsub subscriptions describe "$sub" -- pubsub subscriptions delete "$sub"
done

bucket_exists=0
if exists storage buckets describe "gs://$BUCKET"; then bucket_exists=1; fi

step "Bucket notification for jobs/"
if ((bucket_exists)); then
  # Only the notification deploy.sh made: prefix jobs/, topic helios-jobs.
  notifications=$(ask storage buckets notifications list "gs://$BUCKET" \
    --format='value("Notification Configuration".id,"Notification Configuration".topic,"Notification Configuration".object_name_prefix)')
  removed=0
  while IFS=$'\t' read -r id topic prefix; do
    if [[ $prefix == jobs/ && $topic == */topics/$TOPIC ]]; then
      gc storage buckets notifications delete "projects/_/buckets/$BUCKET/notificationConfigs/$id" </dev/null
      removed=1
    fi
  done <<<"$notifications"
  ((removed)) || echo "  already gone"
else
  echo "  gs://$BUCKET: already gone"
fi

step "Pub/Sub topics"
for topic in "$TOPIC" "$DEAD_TOPIC"; do
  remove "$topic" pubsub topics describe "$topic" -- pubsub topics delete "$topic"
done

step "Bucket gs://$BUCKET"
if ((!bucket_exists)); then
  echo "  already gone"
elif [[ $DELETE_BUCKET == 1 ]]; then
  # Every object (videos included), then the bucket.
  gc storage rm --recursive "gs://$BUCKET/"
else
  echo "  kept with its objects (DELETE_BUCKET=1 deletes it); removing the services' access to it"
  for name in orchestrator worker stitcher; do
    for role in "$LISTER_ROLE" roles/storage.objectUser roles/storage.objectViewer; do
      # --all: every binding of this role and member, whatever its condition.
      gc_unless_absent "$role binding of helios-$name" storage buckets remove-iam-policy-binding "gs://$BUCKET" \
        --member="serviceAccount:$(sa "$name")" --role="$role" --all --format=none
    done
  done
fi

step "Custom role $ROLE_ID"
# Deleted roles linger for 7 days (deploy.sh undeletes it if run again).
if lookup iam roles describe "$ROLE_ID" --format='value(deleted)' && [[ $REPLY != [Tt]rue ]]; then
  gc iam roles delete "$ROLE_ID"
else
  echo "  already gone"
fi

step "Service accounts (their own bindings go with them)"
for name in orchestrator worker stitcher push; do
  remove "helios-$name" iam service-accounts describe "$(sa "$name")" -- iam service-accounts delete "$(sa "$name")"
done

step "Artifact Registry repository $REPO (and its images)"
remove "$REPO" artifacts repositories describe "$REPO" --location="$REGION" \
  -- artifacts repositories delete "$REPO" --location="$REGION"

printf '\nDone.'
if [[ $DELETE_BUCKET == 1 ]]; then
  printf '\n'
else
  printf ' The bucket gs://%s and its videos are kept.\n' "$BUCKET"
fi
