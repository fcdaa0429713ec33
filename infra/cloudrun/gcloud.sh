# The gcloud helpers deploy.sh and destroy.sh share. Sourced, not run: the
# script sets GCLOUD and PROJECT and defines die first.
#
# A describe that fails is "not there" only when gcloud says so; any other
# failure (no account signed in, an expired login, a missing permission, a
# project that is not there or not yours, the network) stops the script with
# gcloud's own message. Counting those as "absent" made destroy.sh report a
# teardown that never happened, with every service still billing.

# gc runs a gcloud command that changes something, and shows it first.
# Flags are always written --name=value so the log reads unambiguously.
gc() {
  printf '  $ gcloud %s\n' "$*"
  "$GCLOUD" "$@" --project="$PROJECT" --quiet
}

# ask runs a gcloud command for its output only.
ask() { "$GCLOUD" "$@" --project="$PROJECT" --quiet; }

# not_found reports whether gcloud's error text says definitely "no such
# resource". Denials come first: Google answers a resource you may not read
# with "(or it may not exist)", and a project you cannot see with
# "not found or user does not have access".
not_found() {
  case $1 in
  *PERMISSION_DENIED* | *UNAUTHENTICATED* | *"HTTPError 401"* | *"HTTPError 403"* | *"does not have"* | \
    *[Dd]enied* | *"active account"* | *"auth login"* | *[Rr]eauthentication* | *"auth tokens"* | \
    *[Cc]redential* | *"project not found"* | *"Requested project"*) return 1 ;;
  *NOT_FOUND* | *"not found"* | *"Cannot find"* | *"does not exist"* | *"HTTPError 404"*) return 0 ;;
  esac
  return 1
}

# stop_on ARGS ERROR: the script ends with what gcloud said and what to do.
stop_on() {
  local cmd=$1 err=$2 hint
  case $err in
  *"active account"* | *"auth login"* | *[Rr]eauthentication* | *"auth tokens"*)
    hint='sign in with `gcloud auth login` and run this again' ;;
  *PERMISSION_DENIED* | *"HTTPError 403"* | *"does not have"* | *[Dd]enied*)
    local account
    account=$("$GCLOUD" config get-value account 2>/dev/null || true)
    hint="${account:-the signed-in account} lacks a permission in $PROJECT (an owner can run this)" ;;
  *) hint='nothing was assumed gone or absent; fix the cause and run this again' ;;
  esac
  die "$(printf 'gcloud %s failed:\n%s\n%s' "$cmd" "$err" "$hint")"
}

# capture GCLOUD-ARGS...: gcloud for the project, its output in REPLY and
# its error text in ERR; the status is gcloud's. (Not for a command
# substitution: REPLY and ERR would stay in the subshell.)
capture() {
  local errfile rc=0
  errfile=$(mktemp)
  REPLY=$("$GCLOUD" "$@" --project="$PROJECT" --quiet 2>"$errfile") || rc=$?
  ERR=$(<"$errfile")
  rm -f "$errfile"
  return "$rc"
}

# lookup DESCRIBE-ARGS...: 0 with the output in REPLY if the resource is
# there, 1 if gcloud says it is not; anything else stops the script.
lookup() {
  capture "$@" && return 0
  not_found "$ERR" && return 1
  stop_on "$*" "$ERR"
}

# exists DESCRIBE-ARGS...: lookup, for the answer only.
exists() { lookup "$@"; }

# gc_unless_absent WHAT GCLOUD-ARGS...: gc, where gcloud saying WHAT is not
# there (a binding already removed) is not an error.
gc_unless_absent() {
  local what=$1
  shift
  printf '  $ gcloud %s\n' "$*"
  if capture "$@"; then
    [[ -z $REPLY ]] || printf '%s\n' "$REPLY"
    [[ -z $ERR ]] || printf '%s\n' "$ERR" >&2
    return 0
  fi
  if not_found "$ERR"; then
    echo "  ($what: already gone)"
    return 0
  fi
  stop_on "$*" "$ERR"
}

# check_project stops unless gcloud can read PROJECT: a typo in it, or no
# account, must not look like an empty project.
check_project() {
  capture projects describe "$PROJECT" --format='value(projectNumber)' || stop_on "projects describe $PROJECT" "$ERR"
  PROJECT_NUMBER=$REPLY
  [[ $PROJECT_NUMBER =~ ^[0-9]+$ ]] || die "could not read the project number of $PROJECT (got '$PROJECT_NUMBER')"
}
