#!/usr/bin/env bash
# Deploy Helios to Google Cloud Run: one bucket, five services
# (helios-orchestrator, helios-worker, helios-stitcher, helios-sweeper and,
# unless BROWSER_WORKER=0, helios-browser-worker for the chunks that run
# `helios`), a Pub/Sub topic that starts and continues jobs, a Cloud Scheduler
# job that calls the sweeper for jobs left behind, and least-privilege IAM.
#
#   PROJECT=my-project REGION=us-central1 infra/cloudrun/deploy.sh
#
# Inputs (environment variables):
#   PROJECT               required: the Google Cloud project ID
#   REGION                required: the Cloud Run region, e.g. us-central1
#   BUCKET                default helios-renders-$PROJECT
#   WORKER_MAX_INSTANCES  default 100: the max instances of each worker, and
#                         the orchestrator's chunks in flight (HELIOS_CONCURRENCY)
#   ALLOWED_COMMANDS      default ffmpeg: HELIOS_ALLOWED_COMMANDS of the
#                         worker and the stitcher; the orchestrator and the
#                         browser worker get it plus helios (unless
#                         BROWSER_WORKER=0)
#   SEGMENT_EXPIRY_DAYS   default 7: segments left behind by failed or
#                         cancelled jobs are deleted after this many days
#   IMAGE                 default: build one from this checkout with Cloud
#                         Build (no local Docker needed)
#   BROWSER_WORKER        default 1: deploy helios-browser-worker (Node.js,
#                         Chromium, the Helios renderer) and send it the chunks
#                         that run `helios`; 0 deploys none of it (a browser
#                         worker deployed before is left unused; destroy.sh
#                         removes it)
#   BROWSER_IMAGE         default: build infra/browser-worker/Dockerfile from
#                         this checkout with Cloud Build, as IMAGE
#   SCHEDULER_REGION      default $REGION: where the sweep's Cloud Scheduler
#                         job lives (for a region Cloud Scheduler lacks)
#   WEBHOOK_SECRET        default none: the name of a Secret Manager secret
#                         (in PROJECT) holding the key that signs webhooks;
#                         the orchestrator gets it as HELIOS_WEBHOOK_SECRET
#                         (latest version) and may read that secret only.
#                         Without it, specs' webhooks are not sent.
#   RENDER_ORIGINS        default none: origins the workers fetch for rendered
#                         pages (HELIOS_RENDER_ORIGINS), comma-separated, e.g.
#                         https://fonts.googleapis.com,https://fonts.gstatic.com
#   GCLOUD                default gcloud (the tests put a stand-in here)
#
# Needs only gcloud, authenticated as someone who may enable APIs and manage
# IAM in the project (an owner). Safe to run again: whatever `create` would
# refuse the second time is looked up first; the rest (`replace`, `update`,
# `add-iam-policy-binding`) changes nothing when nothing changed.
set -euo pipefail

GCLOUD=${GCLOUD:-gcloud}
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
root=$(cd -- "$here/../.." && pwd)

die() { printf 'deploy.sh: %s\n' "$*" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*"; }

# --- Inputs -----------------------------------------------------------------

missing=()
[[ -n ${PROJECT:-} ]] || missing+=("PROJECT is not set (the Google Cloud project ID)")
[[ -n ${REGION:-} ]] || missing+=("REGION is not set (a Cloud Run region such as us-central1)")
if ((${#missing[@]})); then
  die "$(printf '%s; ' "${missing[@]}")usage: PROJECT=my-project REGION=us-central1 $0"
fi
BUCKET=${BUCKET:-helios-renders-$PROJECT}
WORKER_MAX_INSTANCES=${WORKER_MAX_INSTANCES:-100}
ALLOWED_COMMANDS=${ALLOWED_COMMANDS:-ffmpeg}
SEGMENT_EXPIRY_DAYS=${SEGMENT_EXPIRY_DAYS:-7}
IMAGE=${IMAGE:-}
WEBHOOK_SECRET=${WEBHOOK_SECRET:-}
BROWSER_WORKER=${BROWSER_WORKER:-1}
BROWSER_IMAGE=${BROWSER_IMAGE:-}
SCHEDULER_REGION=${SCHEDULER_REGION:-$REGION}
RENDER_ORIGINS=${RENDER_ORIGINS:-}

# The values end up in YAML, IAM conditions and resource names: refuse
# anything that could break out of them instead of quoting it.
[[ $PROJECT =~ ^[a-z][a-z0-9-]{4,28}[a-z0-9]$ ]] || die "PROJECT=$PROJECT: expected a project ID (6-30 lowercase letters, digits or '-')"
[[ $REGION =~ ^[a-z]+-[a-z]+[0-9]+$ ]] || die "REGION=$REGION: expected a region such as us-central1"
[[ $SCHEDULER_REGION =~ ^[a-z]+-[a-z]+[0-9]+$ ]] || die "SCHEDULER_REGION=$SCHEDULER_REGION: expected a region such as us-central1"
[[ $BUCKET =~ ^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$ ]] || die "BUCKET=$BUCKET: expected 3-63 lowercase letters, digits, '-' or '_'"
[[ $WORKER_MAX_INSTANCES =~ ^[1-9][0-9]{0,3}$ ]] || die "WORKER_MAX_INSTANCES=$WORKER_MAX_INSTANCES: expected a whole number from 1 to 9999"
commands_re='^[A-Za-z0-9._/+, -]+$'
[[ $ALLOWED_COMMANDS =~ $commands_re ]] || die "ALLOWED_COMMANDS=$ALLOWED_COMMANDS: expected a comma-separated list of program names"
[[ $SEGMENT_EXPIRY_DAYS =~ ^[1-9][0-9]{0,3}$ ]] || die "SEGMENT_EXPIRY_DAYS=$SEGMENT_EXPIRY_DAYS: expected a whole number of days from 1 to 9999"
[[ -z $WEBHOOK_SECRET || $WEBHOOK_SECRET =~ ^[A-Za-z0-9_-]{1,255}$ ]] || die "WEBHOOK_SECRET=$WEBHOOK_SECRET: expected the name of a Secret Manager secret (letters, digits, '-' or '_')"
[[ -z $IMAGE || $IMAGE =~ ^[A-Za-z0-9./:@_-]+$ ]] || die "IMAGE=$IMAGE: expected an image reference"
[[ $BROWSER_WORKER == 0 || $BROWSER_WORKER == 1 ]] || die "BROWSER_WORKER=$BROWSER_WORKER: expected 0 (no browser worker) or 1"
[[ -z $BROWSER_IMAGE || $BROWSER_IMAGE =~ ^[A-Za-z0-9./:@_-]+$ ]] || die "BROWSER_IMAGE=$BROWSER_IMAGE: expected an image reference"
# An image that would not be deployed is a mistake in the inputs.
[[ -z $BROWSER_IMAGE || $BROWSER_WORKER == 1 ]] || die "BROWSER_IMAGE=$BROWSER_IMAGE: BROWSER_WORKER=0 deploys no browser worker"
origins_re='^https?://[a-z0-9.-]+(:[0-9]{1,5})?(,https?://[a-z0-9.-]+(:[0-9]{1,5})?)*$'
[[ -z $RENDER_ORIGINS || $RENDER_ORIGINS =~ $origins_re ]] || die "RENDER_ORIGINS=$RENDER_ORIGINS: expected comma-separated origins such as https://fonts.googleapis.com,https://fonts.gstatic.com"
command -v "$GCLOUD" >/dev/null || die "$GCLOUD not found: install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install)"

# Names. The environment variable names in the YAML files are pkg/config's.
TOPIC=helios-jobs                 # GCS notifications for jobs/ and {"jobId"} continuations
DEAD_TOPIC=helios-jobs-dead       # deliveries the orchestrator refused 10 times
DEAD_SUB=helios-jobs-dead-sub     # keeps the dead letters until someone looks
PUSH_SUB=helios-jobs-push         # delivers $TOPIC to the orchestrator
SWEEP_JOB=helios-sweep            # Cloud Scheduler: POST /sweep on helios-sweeper every 5 minutes
REPO=helios                       # Artifact Registry repository
ROLE_ID=heliosBucketLister
LISTER_ROLE=projects/$PROJECT/roles/$ROLE_ID
sa() { printf 'helios-%s@%s.iam.gserviceaccount.com' "$1" "$PROJECT"; }
ORCH_SA=$(sa orchestrator)
WORKER_SA=$(sa worker)
STITCHER_SA=$(sa stitcher)
PUSH_SA=$(sa push)                # the identity Pub/Sub pushes (and Cloud Scheduler sweeps) as

# The orchestrator checks every spec against its own allowlist, so it must
# allow helios when the browser worker is there to run it; the worker, which
# has no browser, keeps ALLOWED_COMMANDS.
BROWSER_ALLOWED_COMMANDS=$ALLOWED_COMMANDS
[[ ",${ALLOWED_COMMANDS// /,}," == *,helios,* ]] || BROWSER_ALLOWED_COMMANDS=$ALLOWED_COMMANDS,helios
# shellcheck disable=SC2034 # read by render, through ${!name}
if ((BROWSER_WORKER)); then
  ORCHESTRATOR_ALLOWED_COMMANDS=$BROWSER_ALLOWED_COMMANDS
else
  ORCHESTRATOR_ALLOWED_COMMANDS=$ALLOWED_COMMANDS
fi
BROWSER_WORKER_URL=''              # read once deployed; "" without a browser worker

# What each service runs with (the limits in its service file; deploy_test.go
# checks they match), so the status prices its time at pkg/cost's Cloud Run
# prices.
# shellcheck disable=SC2034 # read by render, through ${!name}
SIZES='{"orchestrator":{"memoryMb":512,"cpu":1,"billing":"instance"},"worker":{"memoryMb":4096,"cpu":2},"browserWorker":{"memoryMb":4096,"cpu":2},"stitcher":{"memoryMb":8192,"cpu":2,"billing":"instance"}}'

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- gcloud -----------------------------------------------------------------

# gc, ask, exists, lookup, check_project: gcloud.sh.
# shellcheck source=infra/cloudrun/gcloud.sh
. "$here/gcloud.sh"
# retry: a service account just created takes a few seconds to be visible to
# IAM, and a binding naming it fails until then.
retry() {
  local n=1
  until "$@"; do
    ((n < 5)) || return 1
    printf '  (retrying in %ss: new identities take a moment to reach IAM)\n' $((n * 5))
    sleep $((n * 5))
    n=$((n + 1))
  done
}

# render writes infra/cloudrun/<file> with every ${NAME} replaced by the
# variable of that name, and prints the written file's path. It stops if a
# placeholder is left: an empty or missing value must never deploy.
render() {
  local text name
  text=$(<"$here/$1")
  for name in PROJECT REGION IMAGE BROWSER_IMAGE BUCKET ALLOWED_COMMANDS BROWSER_ALLOWED_COMMANDS \
    ORCHESTRATOR_ALLOWED_COMMANDS WORKER_MAX_INSTANCES WORKER_URL STITCHER_URL BROWSER_WORKER_URL \
    TOPIC SIZES WEBHOOK_SECRET RENDER_ORIGINS; do
    [[ -n ${!name:-} ]] || continue
    text=${text//"\${$name}"/"${!name}"}
  done
  # Without a webhook key, its lines (marked) go.
  [[ -n $WEBHOOK_SECRET ]] || text=$(grep -v -- '# webhook-secret$' <<<"$text")
  # Likewise without origins for pages.
  [[ -n $RENDER_ORIGINS ]] || text=$(grep -v -- '# render-origins$' <<<"$text")
  # The one value that is empty on purpose: no browser worker, no URL
  # (pkg/config reads "" as unset). With one, an empty URL stops below.
  ((BROWSER_WORKER)) || text=${text//"\${BROWSER_WORKER_URL}"/}
  # shellcheck disable=SC2016 # a literal ${, not an expansion
  if [[ $text == *'${'* ]]; then
    die "$1: placeholder left unreplaced: $(grep -o '\${[^}]*}' <<<"$text" | sort -u | tr '\n' ' ')"
  fi
  printf '%s\n' "$text" >"$work/$1"
  printf '%s' "$work/$1"
}

# url_of prints a deployed service's https URL.
url_of() {
  local url
  url=$(ask run services describe "$1" --region="$REGION" --format='value(status.url)')
  [[ $url == https://* ]] || die "could not read the URL of $1 (got '$url')"
  printf '%s' "$url"
}

# --- Project ----------------------------------------------------------------

step "Project $PROJECT"
check_project # sets PROJECT_NUMBER
echo "  number $PROJECT_NUMBER"

step "Enabling the APIs (Cloud Run, Pub/Sub, Cloud Storage, Artifact Registry, Cloud Build, IAM, IAM Credentials, Cloud Scheduler)"
gc services enable run.googleapis.com pubsub.googleapis.com storage.googleapis.com \
  artifactregistry.googleapis.com cloudbuild.googleapis.com iam.googleapis.com iamcredentials.googleapis.com \
  cloudscheduler.googleapis.com

# Pub/Sub's own identity: it forwards dead letters and mints the push tokens.
PUBSUB_AGENT=service-$PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com

# --- Image ------------------------------------------------------------------

step "Artifact Registry repository $REPO ($REGION)"
if exists artifacts repositories describe "$REPO" --location="$REGION"; then
  echo "  exists"
else
  gc artifacts repositories create "$REPO" --repository-format=docker --location="$REGION" \
    --description="Helios images"
fi

# One tag for the images this run builds.
tag=$(date -u +%Y%m%d-%H%M%S)
if rev=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null); then tag=$tag-$rev; fi
if [[ -z $IMAGE ]]; then
  IMAGE=$REGION-docker.pkg.dev/$PROJECT/$REPO/helios:$tag
  step "Building $IMAGE with Cloud Build (from $root)"
  # --config, not --tag: the Dockerfile is not at the root of the source.
  # The build runs as the project's Cloud Build service account; where an
  # organization policy keeps it from writing to Artifact Registry, the push
  # fails: grant it roles/artifactregistry.writer on the repository.
  (cd "$root" && gc builds submit . --config=infra/cloudrun/cloudbuild.yaml \
    --substitutions=_IMAGE="$IMAGE" --ignore-file=infra/cloudrun/gcloudignore)
else
  step "Using the image $IMAGE"
fi

if ((!BROWSER_WORKER)); then
  step "No browser worker (BROWSER_WORKER=0): every chunk goes to helios-worker"
elif [[ -z $BROWSER_IMAGE ]]; then
  BROWSER_IMAGE=$REGION-docker.pkg.dev/$PROJECT/$REPO/helios-browser-worker:$tag
  step "Building $BROWSER_IMAGE with Cloud Build (from $root)"
  # The same source upload (gcloudignore leaves out the renderer's local
  # Chromium and node_modules); the image unpacks its own at build time.
  (cd "$root" && gc builds submit . --config=infra/cloudrun/browser-worker.cloudbuild.yaml \
    --substitutions=_IMAGE="$BROWSER_IMAGE" --ignore-file=infra/cloudrun/gcloudignore)
else
  step "Using the browser worker image $BROWSER_IMAGE"
fi

# --- Identities -------------------------------------------------------------

step "Service accounts: one per service, and helios-push for Pub/Sub push"
for name in orchestrator worker stitcher push; do
  if exists iam service-accounts describe "$(sa "$name")"; then
    echo "  $(sa "$name") exists"
  else
    gc iam service-accounts create "helios-$name" --display-name="Helios $name"
  fi
done

# --- Bucket -----------------------------------------------------------------

step "Bucket gs://$BUCKET: uniform access, public access prevented, segments expire after $SEGMENT_EXPIRY_DAYS days"
if exists storage buckets describe "gs://$BUCKET"; then
  echo "  exists"
else
  gc storage buckets create "gs://$BUCKET" --location="$REGION" \
    --uniform-bucket-level-access --public-access-prevention
fi
# The worker sets a custom time on every segment it uploads; nothing else
# has one (specs, statuses, markers, videos), so only segments a failed or
# cancelled job left behind match the first rule. The prefix is a second
# guard. Incomplete multipart uploads (XML API) are dropped after a day.
cat >"$work/lifecycle.json" <<EOF
{
  "rule": [
    {
      "action": {"type": "Delete"},
      "condition": {"daysSinceCustomTime": $SEGMENT_EXPIRY_DAYS, "matchesPrefix": ["renders/"]}
    },
    {
      "action": {"type": "AbortIncompleteMultipartUpload"},
      "condition": {"age": 1}
    }
  ]
}
EOF
# Also on an existing bucket, so a re-run puts the settings back.
gc storage buckets update "gs://$BUCKET" --uniform-bucket-level-access --public-access-prevention \
  --lifecycle-file="$work/lifecycle.json"

# --- Bucket IAM -------------------------------------------------------------

step "Custom role $ROLE_ID: list the bucket, nothing else"
# Listing is checked against the bucket, not an object, so a condition on
# object names cannot grant it: each service gets this unconditioned role for
# it (so a missing key is a 404, not a 403), and object access below.
lister_permissions=storage.objects.list,storage.buckets.get
lister_flags=(--title="Helios bucket lister" --description="List objects in the Helios bucket"
  --permissions="$lister_permissions" --stage=GA)
if lookup iam roles describe "$ROLE_ID" --format='value(deleted)'; then
  # A deleted custom role lingers for 7 days and blocks a create of its ID.
  if [[ $REPLY == [Tt]rue ]]; then gc iam roles undelete "$ROLE_ID"; fi
  gc iam roles update "$ROLE_ID" "${lister_flags[@]}"
else
  gc iam roles create "$ROLE_ID" "${lister_flags[@]}"
fi

objects=projects/_/buckets/$BUCKET/objects/
under() { printf 'resource.name.startsWith("%s%s")' "$objects" "$1"; }
# renders/<id>/chunks/...: a prefix cannot say "any id", extract() can.
# startsWith pins it to renders/ at the start of the name.
chunks="$(under renders/) && resource.name.extract(\"${objects}renders/{id}/chunks/\") != \"\""

# bucket_grant MEMBER ROLE [TITLE EXPRESSION]: a binding on the bucket, with an
# IAM condition when given. The ^;^ prefix makes ';' the separator of the
# condition's fields. Without a condition, --condition=None: gcloud refuses
# an unconditioned binding on a policy with conditions otherwise.
bucket_grant() {
  local condition=None
  (($# < 3)) || condition="^;^title=$3;expression=$4"
  retry gc storage buckets add-iam-policy-binding "gs://$BUCKET" --member="serviceAccount:$1" \
    --role="$2" --condition="$condition" --format=none
}

step "Bucket access, by prefix"
for account in "$ORCH_SA" "$WORKER_SA" "$STITCHER_SA"; do
  bucket_grant "$account" "$LISTER_ROLE"
done
# roles/storage.objectUser = get, create, update, delete (no IAM changes);
# objectViewer = get. Neither can be narrowed to "write but not read", so
# whoever writes a prefix can read it too.
# Orchestrator: reads and writes jobs/ and renders/ (specs, status, leases,
# markers, cleanup of segments) and active/ (one object per running job, which
# the sweep reads), reads outputs/ (to sign a URL for a video stored there).
# (A deployment from before active/ keeps its narrower jobs/ and renders/
# binding beside this one: a binding is its role, member and condition.)
bucket_grant "$ORCH_SA" roles/storage.objectUser helios-orchestrator-jobs-renders-active \
  "$(under jobs/) || $(under renders/) || $(under active/)"
bucket_grant "$ORCH_SA" roles/storage.objectViewer helios-orchestrator-outputs "$(under outputs/)"
# Worker: reads asset bundles, writes segments and completion markers (and
# reads the markers back) under renders/<id>/chunks/ only.
bucket_grant "$WORKER_SA" roles/storage.objectViewer helios-worker-assets "$(under assets/)"
bucket_grant "$WORKER_SA" roles/storage.objectUser helios-worker-chunks "$chunks"
# Stitcher: reads segments, writes the video under renders/ or outputs/.
# objectUser on renders/ covers reading renders/*/chunks/; it also lets the
# stitcher read the rest of renders/ (spec, status), which no predefined role
# can leave out while allowing writes there.
bucket_grant "$STITCHER_SA" roles/storage.objectUser helios-stitcher-renders-outputs \
  "$(under renders/) || $(under outputs/)"

if [[ -n $WEBHOOK_SECRET ]]; then
  step "Webhook key: the orchestrator may read the secret $WEBHOOK_SECRET, and no other"
  gc services enable secretmanager.googleapis.com
  retry gc secrets add-iam-policy-binding "$WEBHOOK_SECRET" --member="serviceAccount:$ORCH_SA" \
    --role=roles/secretmanager.secretAccessor --format=none
fi

step "Signing URLs: the orchestrator may sign as itself (IAM Credentials signBlob), as no one else"
retry gc iam service-accounts add-iam-policy-binding "$ORCH_SA" --member="serviceAccount:$ORCH_SA" \
  --role=roles/iam.serviceAccountTokenCreator --format=none

# --- Pub/Sub ----------------------------------------------------------------

step "Pub/Sub topics $TOPIC and $DEAD_TOPIC, and $DEAD_SUB to keep dead letters"
for topic in "$TOPIC" "$DEAD_TOPIC"; do
  if exists pubsub topics describe "$topic"; then echo "  $topic exists"; else gc pubsub topics create "$topic"; fi
done
# A subscription nobody pulls from expires after 31 days unless told not to.
if exists pubsub subscriptions describe "$DEAD_SUB"; then
  echo "  $DEAD_SUB exists"
else
  gc pubsub subscriptions create "$DEAD_SUB" --topic="$DEAD_TOPIC" --message-retention-duration=7d \
    --expiration-period=never
fi
# The orchestrator publishes {"jobId": ...} to continue a job that outlives
# one request.
retry gc pubsub topics add-iam-policy-binding "$TOPIC" --member="serviceAccount:$ORCH_SA" \
  --role=roles/pubsub.publisher --format=none
# Dead-lettering is done by Pub/Sub's service agent: it publishes to the
# dead-letter topic, acks on the push subscription (below), and mints the
# identity tokens of helios-push for authenticated push.
retry gc pubsub topics add-iam-policy-binding "$DEAD_TOPIC" --member="serviceAccount:$PUBSUB_AGENT" \
  --role=roles/pubsub.publisher --format=none
retry gc iam service-accounts add-iam-policy-binding "$PUSH_SA" --member="serviceAccount:$PUBSUB_AGENT" \
  --role=roles/iam.serviceAccountTokenCreator --format=none

step "Notification: objects finalized under jobs/ in gs://$BUCKET publish to $TOPIC"
# Nothing outside jobs/ notifies, so the orchestrator's own writes under
# renders/ cannot start it again. A second identical notification would
# deliver every upload twice: create it only if none has the prefix.
notifications=$(ask storage buckets notifications list "gs://$BUCKET" \
  --format='value("Notification Configuration".id,"Notification Configuration".topic,"Notification Configuration".object_name_prefix)')
if awk -F'\t' '$3 == "jobs/" { found = 1 } END { exit !found }' <<<"$notifications"; then
  echo "  exists"
else
  # Also grants Cloud Storage's service agent publish on the topic.
  gc storage buckets notifications create "gs://$BUCKET" --topic="$TOPIC" \
    --event-types=OBJECT_FINALIZE --object-prefix=jobs/ --payload-format=json
fi

# --- Services ---------------------------------------------------------------

step "Deploying helios-worker and helios-stitcher"
file=$(render worker.yaml)
gc run services replace "$file" --region="$REGION"
file=$(render stitcher.yaml)
gc run services replace "$file" --region="$REGION"
WORKER_URL=$(url_of helios-worker)
STITCHER_URL=$(url_of helios-stitcher)
echo "  helios-worker:   $WORKER_URL"
echo "  helios-stitcher: $STITCHER_URL"
called=(helios-worker helios-stitcher)

if ((BROWSER_WORKER)); then
  step "Deploying helios-browser-worker"
  file=$(render browser-worker.yaml)
  gc run services replace "$file" --region="$REGION"
  BROWSER_WORKER_URL=$(url_of helios-browser-worker)
  echo "  helios-browser-worker: $BROWSER_WORKER_URL"
  called+=(helios-browser-worker)
fi

step "Only the orchestrator may invoke ${called[*]}"
for service in "${called[@]}"; do
  retry gc run services add-iam-policy-binding "$service" --region="$REGION" \
    --member="serviceAccount:$ORCH_SA" --role=roles/run.invoker --format=none
done

step "Deploying helios-orchestrator"
file=$(render orchestrator.yaml)
gc run services replace "$file" --region="$REGION"
ORCHESTRATOR_URL=$(url_of helios-orchestrator)
echo "  helios-orchestrator: $ORCHESTRATOR_URL"

step "Only helios-push (Pub/Sub push) may invoke the orchestrator; you can add yourself"
retry gc run services add-iam-policy-binding helios-orchestrator --region="$REGION" \
  --member="serviceAccount:$PUSH_SA" --role=roles/run.invoker --format=none

step "Deploying helios-sweeper (the sweep, billed per request: no orchestrator instance is kept up for it)"
file=$(render sweeper.yaml)
gc run services replace "$file" --region="$REGION"
SWEEPER_URL=$(url_of helios-sweeper)
echo "  helios-sweeper: $SWEEPER_URL"
retry gc run services add-iam-policy-binding helios-sweeper --region="$REGION" \
  --member="serviceAccount:$PUSH_SA" --role=roles/run.invoker --format=none

step "Push subscription $PUSH_SUB: $TOPIC to the orchestrator, with an identity token"
# Ack deadline 600 s (the most Pub/Sub allows): how long a delivery may take
# to answer before it is sent again. Retries back off from 10 s to 600 s;
# after 10 attempts the message goes to $DEAD_TOPIC.
push_flags=(--push-endpoint="$ORCHESTRATOR_URL/" --push-auth-service-account="$PUSH_SA"
  --push-auth-token-audience="$ORCHESTRATOR_URL" --ack-deadline=600
  --min-retry-delay=10s --max-retry-delay=600s
  --dead-letter-topic="$DEAD_TOPIC" --max-delivery-attempts=10
  --message-retention-duration=7d --expiration-period=never)
if exists pubsub subscriptions describe "$PUSH_SUB"; then
  gc pubsub subscriptions update "$PUSH_SUB" "${push_flags[@]}"
else
  gc pubsub subscriptions create "$PUSH_SUB" --topic="$TOPIC" "${push_flags[@]}"
fi
retry gc pubsub subscriptions add-iam-policy-binding "$PUSH_SUB" --member="serviceAccount:$PUBSUB_AGENT" \
  --role=roles/pubsub.subscriber --format=none

step "Cloud Scheduler job $SWEEP_JOB: POST /sweep on helios-sweeper every 5 minutes"
# The sweep resumes jobs whose lease ran out without anyone continuing them
# (a lost continuation, a dead instance), a bounded number per call, by
# publishing {"jobId"} to $TOPIC: only then is the orchestrator woken.
# It calls as helios-push: that account holds run.invoker on the sweeper
# (and the orchestrator) and nothing else of its own, which is exactly what
# the sweep needs; a second account would need the same grant and add nothing. The
# token is minted by Cloud Scheduler's service agent through the role
# Google gives it when the API is enabled (roles/cloudscheduler.serviceAgent,
# which must not be revoked), so nothing more is granted here; creating the
# job needs iam.serviceAccounts.actAs on helios-push (roles/iam.serviceAccountUser).
# The sweeper (the orchestrator's code) refuses a body without a JSON content type. A missed run
# is not retried: the next one is 5 minutes away.
sweep_flags=(--location="$SCHEDULER_REGION" --schedule="*/5 * * * *" --time-zone=Etc/UTC
  --uri="$SWEEPER_URL/sweep" --http-method=POST --message-body="{}"
  --oidc-service-account-email="$PUSH_SA" --oidc-token-audience="$SWEEPER_URL"
  --attempt-deadline=300s --description="Helios: resume jobs left behind")
if exists scheduler jobs describe "$SWEEP_JOB" --location="$SCHEDULER_REGION"; then
  gc scheduler jobs update http "$SWEEP_JOB" "${sweep_flags[@]}" --update-headers=Content-Type=application/json
else
  gc scheduler jobs create http "$SWEEP_JOB" "${sweep_flags[@]}" --headers=Content-Type=application/json
fi

# --- Done -------------------------------------------------------------------

cat <<EOF

Deployed.
  bucket:        gs://$BUCKET
  orchestrator:  $ORCHESTRATOR_URL
  image:         $IMAGE
  browser image: ${BROWSER_IMAGE:-none (BROWSER_WORKER=0)}

Your first render (the upload starts the job):
  gcloud storage cp examples/jobs/demo.json gs://$BUCKET/jobs/demo.json
  bin/helios job watch demo --storage gs://$BUCKET
  gcloud storage cp gs://$BUCKET/renders/demo/output.mp4 .

The HTTP API (POST /jobs, GET /jobs/{id}, DELETE /jobs/{id}) needs run.invoker
on the orchestrator. Nobody has it but helios-push (Pub/Sub and the sweep);
grant it to yourself once:
  gcloud run services add-iam-policy-binding helios-orchestrator --project=$PROJECT --region=$REGION \\
    --member="user:\$(gcloud config get-value account)" --role=roles/run.invoker
then:
  curl -H "Authorization: Bearer \$(gcloud auth print-identity-token)" -H 'content-type: application/json' \\
    --data @examples/jobs/demo.json $ORCHESTRATOR_URL/jobs
  curl -H "Authorization: Bearer \$(gcloud auth print-identity-token)" $ORCHESTRATOR_URL/jobs/demo
EOF
