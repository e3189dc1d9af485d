#!/bin/bash
set -euo pipefail

readonly DEPLOYMENT='pi'
readonly REGION='eu-west-1'
readonly EFS_ID='fs-0123456789abcdef0'
readonly EFS_DNS="$EFS_ID.efs.eu-west-1.amazonaws.com"
readonly EFS_REQUIRE_TLS='1'
readonly DB_ENDPOINT_PARAMETER='/pi/db-endpoint'
readonly DB_SECRET_ARN='arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-0b1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e-AbCdEf'
readonly LICENCE_SECRET_ARN=''
readonly ASG_NAME='pi-dashboard'
readonly LIFECYCLE_HOOK='pi-wait-for-dashboard'
readonly ENDPOINT_WAIT_SECONDS='2400'
readonly EFS_UID='1000'
readonly EFS_GID='1000'

readonly DASHBOARD_UNIT=panintelligence.service
readonly DASHBOARD_URL=http://127.0.0.1:8224/
readonly DASHBOARD_WAIT_SECONDS=900
readonly PI_DIR=/var/panintelligence
readonly EFS_MOUNT=/mnt/efs
readonly EFS_SHARED="$EFS_MOUNT/var/panintelligence"
readonly EFS_OPTIONS=nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport,_netdev,nofail
readonly EFS_TLS_OPTIONS=tls,_netdev,nofail
readonly -a FOLDERS=(images themes excel-data svg keys logs)
readonly SELF=/usr/local/sbin/pi-dashboard-env
readonly DROP_IN="/etc/systemd/system/$DASHBOARD_UNIT.d/50-pi-deploy.conf"
readonly DB_SECRET_VERSION_FILE=/var/lib/pi-deploy/db-secret-version
readonly REFRESH_UNIT=pi-dashboard-secret-refresh
readonly REFRESH_EVERY=5min

LIFECYCLE_DONE=0
readonly HEARTBEAT_EVERY=$((ENDPOINT_WAIT_SECONDS / 3 > 10 ? ENDPOINT_WAIT_SECONDS / 3 : 10))
LAST_HEARTBEAT=0
INSTANCE_ID=''

log() {
  printf '%s pi-deploy[%s]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$DEPLOYMENT" "$*" >&2
}

retry() {
  local deadline=$((SECONDS + $1)) what=$2 delay=2
  shift 2
  until "$@"; do
    if ((SECONDS + delay > deadline)); then
      log "gave up: $what"
      return 1
    fi
    log "not yet: $what (next try in ${delay}s)"
    sleep "$delay"
    delay=$((delay * 2 > 30 ? 30 : delay * 2))
    heartbeat
  done
}

imds() {
  local token
  token=$(curl -sf -m 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' \
    http://169.254.169.254/latest/api/token) || return 1
  curl -sf -m 5 -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}

heartbeat() {
  if ((LIFECYCLE_DONE || SECONDS - LAST_HEARTBEAT < HEARTBEAT_EVERY)); then
    return 0
  fi
  LAST_HEARTBEAT=$SECONDS
  if [[ -z $INSTANCE_ID ]] && ! INSTANCE_ID=$(imds instance-id); then
    INSTANCE_ID=''
    log "lifecycle heartbeat skipped: no instance id from the metadata service yet"
    return 0
  fi
  if aws autoscaling record-lifecycle-action-heartbeat --region "$REGION" \
    --auto-scaling-group-name "$ASG_NAME" --lifecycle-hook-name "$LIFECYCLE_HOOK" \
    --instance-id "$INSTANCE_ID" >/dev/null; then
    log "lifecycle heartbeat recorded"
  else
    log "lifecycle heartbeat failed (the next wait tries again)"
  fi
}

complete_lifecycle_once() {
  aws autoscaling complete-lifecycle-action --region "$REGION" \
    --auto-scaling-group-name "$ASG_NAME" --lifecycle-hook-name "$LIFECYCLE_HOOK" \
    --instance-id "$1" --lifecycle-action-result "$2"
}

complete_lifecycle() {
  local instance_id
  if ((LIFECYCLE_DONE)); then
    return 0
  fi
  instance_id=$(retry 120 "instance id from the metadata service" imds instance-id) || return 1
  retry 120 "completing the launch lifecycle action ($1)" complete_lifecycle_once "$instance_id" "$1" || return 1
  LIFECYCLE_DONE=1
  log "launch lifecycle action completed: $1"
}

on_exit() {
  local rc=$?
  if ((rc != 0 && LIFECYCLE_DONE == 0)); then
    log "boot failed (exit $rc): abandoning the launch so Auto Scaling replaces this instance"
    complete_lifecycle ABANDON || log "could not abandon the launch; the lifecycle hook times out instead"
  fi
}

install_nfs_utils() {
  if command -v dnf >/dev/null 2>&1; then
    dnf -y -q install nfs-utils
  elif command -v yum >/dev/null 2>&1; then
    yum -y -q install nfs-utils
  else
    apt-get -qq update && DEBIAN_FRONTEND=noninteractive apt-get -qq -y install nfs-common
  fi
}

install_efs_utils() {
  if command -v dnf >/dev/null 2>&1; then
    dnf -y -q install amazon-efs-utils
  elif command -v yum >/dev/null 2>&1; then
    yum -y -q install amazon-efs-utils
  else
    return 1
  fi
}

mount_once() {
  mountpoint -q "$EFS_MOUNT" || mount "$EFS_MOUNT"
}

mount_efs() {
  local fstab_line
  mkdir -p "$EFS_MOUNT"
  if ! command -v mount.efs >/dev/null 2>&1 && [[ $EFS_REQUIRE_TLS == 1 ]]; then
    retry 120 "installing amazon-efs-utils" install_efs_utils || true
  fi
  if command -v mount.efs >/dev/null 2>&1; then
    fstab_line="$EFS_ID:/ $EFS_MOUNT efs $EFS_TLS_OPTIONS 0 0"
    log "mounting $EFS_ID over TLS (amazon-efs-utils)"
  else
    if [[ $EFS_REQUIRE_TLS == 1 ]]; then
      log "WARNING: amazon-efs-utils is not available: mounting over plain NFS, which the file system's TLS-only policy refuses (set storage.efs_require_tls = false, or use an image with amazon-efs-utils)"
    else
      log "WARNING: amazon-efs-utils is not installed: mounting over plain NFS (no encryption in transit)"
    fi
    if ! command -v mount.nfs4 >/dev/null 2>&1; then
      retry 300 "installing nfs-utils" install_nfs_utils
    fi
    fstab_line="$EFS_DNS:/ $EFS_MOUNT nfs4 $EFS_OPTIONS 0 0"
  fi
  if ! grep -qs "[[:space:]]${EFS_MOUNT}[[:space:]]" /etc/fstab; then
    printf '%s\n' "$fstab_line" >>/etc/fstab
  fi
  retry 900 "mounting $EFS_ID at $EFS_MOUNT" mount_once
}

link_folders() {
  local name local_dir shared_dir
  mkdir -p "$PI_DIR" "$EFS_SHARED"
  for name in "${FOLDERS[@]}"; do
    local_dir="$PI_DIR/$name"
    shared_dir="$EFS_SHARED/$name"
    if [[ ! -d $shared_dir ]]; then
      mkdir -p "$shared_dir"
      chown "$EFS_UID:$EFS_GID" "$shared_dir"
      chmod 0755 "$shared_dir"
    fi
    if [[ -d $local_dir && ! -L $local_dir ]]; then
      if [[ -z $(ls -A "$shared_dir") ]]; then
        cp -a "$local_dir/." "$shared_dir/"
      fi
      rm -rf "$local_dir"
    fi
    ln -sfn "$shared_dir" "$local_dir"
  done
}

install_start_hook() {
  install -m 0700 -o root -g root "${BASH_SOURCE[0]}" "$SELF"
  mkdir -p "$(dirname "$DROP_IN")"
  cat >"$DROP_IN" <<EOF
# Written by pi-deploy (deployment $DEPLOYMENT).
[Unit]
Wants=network-online.target
After=network-online.target remote-fs.target
RequiresMountsFor=$EFS_MOUNT

[Service]
# Fresh database credentials (and licence) before every start: rotation is picked up.
ExecStartPre=$SELF write-env
TimeoutStartSec=900
EOF
  chmod 0644 "$DROP_IN"
  cat >"/etc/systemd/system/$REFRESH_UNIT.service" <<EOF
# Written by pi-deploy (deployment $DEPLOYMENT).
[Unit]
Description=Restart $DASHBOARD_UNIT when its database secret was rotated
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=$SELF refresh
TimeoutStartSec=1500
EOF
  cat >"/etc/systemd/system/$REFRESH_UNIT.timer" <<EOF
# Written by pi-deploy (deployment $DEPLOYMENT).
[Unit]
Description=Look for a rotated database secret every $REFRESH_EVERY

[Timer]
OnBootSec=$REFRESH_EVERY
OnUnitActiveSec=$REFRESH_EVERY

[Install]
WantedBy=timers.target
EOF
  chmod 0644 "/etc/systemd/system/$REFRESH_UNIT.service" "/etc/systemd/system/$REFRESH_UNIT.timer"
  systemctl daemon-reload
}

read_db_endpoint() {
  DB_ENDPOINT=$(aws ssm get-parameter --region "$REGION" --name "$DB_ENDPOINT_PARAMETER" \
    --query Parameter.Value --output text) && [[ $DB_ENDPOINT == *?:?* ]]
}

wait_for_db_endpoint() {
  retry "$1" "parameter $DB_ENDPOINT_PARAMETER (written when the database is ready)" read_db_endpoint
}

read_secret() {
  local secret_value
  secret_value=$(aws secretsmanager get-secret-value --region "$REGION" --secret-id "$1" \
    --query SecretString --output text) || return 1
  printf -v "$2" '%s' "$secret_value"
}

secret_version() {
  local stages version
  stages=$(aws secretsmanager describe-secret --region "$REGION" --secret-id "$1" \
    --query VersionIdsToStages --output json) || return 1
  if command -v jq >/dev/null 2>&1; then
    version=$(printf '%s' "$stages" | jq -er 'to_entries[] | select(.value | index("AWSCURRENT")) | .key')
  else
    version=$(printf '%s' "$stages" | python3 -c \
      'import json, sys; print(*[k for k, v in json.load(sys.stdin).items() if "AWSCURRENT" in v])')
  fi || return 1
  [[ -n $version ]] || return 1
  printf -v "$2" '%s' "$version"
}

json_field() {
  if command -v jq >/dev/null 2>&1; then
    jq -er --arg k "$1" '.[$k] | strings'
  else
    python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
  fi
}

env_lines() {
  printf 'PI_DB_HOST=%s\n' "$1"
  printf 'PI_DB_PORT=%s\n' "$2"
  printf 'PI_DB_USERNAME=%s\n' "$3"
  printf 'PI_DB_PASSWORD=%s\n' "$4"
  printf 'PI_DB_SCHEMA_NAME=dashboard\n'
  printf 'PI_EXTERNAL_DB=true\n'
  if [[ -n $5 ]]; then
    printf 'PI_LICENCE=%s\n' "$5"
  fi
}

replace_file() {
  local tmp
  tmp=$(mktemp "$1.XXXXXX")
  cat >"$tmp"
  chmod 600 "$tmp"
  mv -f "$tmp" "$1"
}

write_env_files() {
  umask 077
  local db_json='' db_version='' username password licence='' file
  wait_for_db_endpoint 300
  retry 300 "reading the database secret's version" secret_version "$DB_SECRET_ARN" db_version
  retry 300 "reading the database secret" read_secret "$DB_SECRET_ARN" db_json
  username=$(printf '%s' "$db_json" | json_field username)
  password=$(printf '%s' "$db_json" | json_field password)
  if [[ -n $LICENCE_SECRET_ARN ]]; then
    retry 300 "reading the licence secret" read_secret "$LICENCE_SECRET_ARN" licence
    licence=${licence//$'\r'/}
    licence=${licence//$'\n'/}
  fi
  mkdir -p "$PI_DIR"
  for file in "$PI_DIR/dashboard.env" "$PI_DIR/scheduler.env"; do
    env_lines "${DB_ENDPOINT%:*}" "${DB_ENDPOINT##*:}" "$username" "$password" "$licence" | replace_file "$file"
  done
  mkdir -p "${DB_SECRET_VERSION_FILE%/*}"
  printf '%s\n' "$db_version" | replace_file "$DB_SECRET_VERSION_FILE"
  log "wrote $PI_DIR/dashboard.env and $PI_DIR/scheduler.env (database ${DB_ENDPOINT%:*}, secret version $db_version)"
}

refresh() {
  local recorded current=''
  if [[ ! -s $DB_SECRET_VERSION_FILE ]]; then
    log "no secret version on record yet (the dashboard has not started): nothing to refresh"
    return 0
  fi
  recorded=$(<"$DB_SECRET_VERSION_FILE")
  if ! secret_version "$DB_SECRET_ARN" current; then
    log "could not read the database secret's version (the next run tries again)"
    return 1
  fi
  if [[ $current == "$recorded" ]]; then
    return 0
  fi
  log "database secret rotated: version $recorded -> $current; restarting $DASHBOARD_UNIT"
  write_env_files
  systemctl try-restart "$DASHBOARD_UNIT"
}

dashboard_answers() {
  local code
  code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$DASHBOARD_URL") || return 1
  [[ $code == [23]?? ]]
}

boot() {
  trap on_exit EXIT
  umask 022
  log "preparing a dashboard instance"
  if ! systemctl cat "$DASHBOARD_UNIT" >/dev/null 2>&1; then
    log "this AMI has no systemd unit $DASHBOARD_UNIT: it is not the image pi-deploy expects"
    exit 1
  fi
  systemctl stop "$DASHBOARD_UNIT" || true
  mount_efs
  link_folders
  install_start_hook
  wait_for_db_endpoint "$ENDPOINT_WAIT_SECONDS"
  systemctl enable "$DASHBOARD_UNIT"
  systemctl restart "$DASHBOARD_UNIT"
  systemctl enable --now "$REFRESH_UNIT.timer"
  retry "$DASHBOARD_WAIT_SECONDS" "the dashboard answering on $DASHBOARD_URL" dashboard_answers
  complete_lifecycle CONTINUE
  log "dashboard ready"
}

main() {
  case "${1:-boot}" in
    boot) boot ;;
    write-env) write_env_files ;;
    refresh) refresh ;;
    *)
      log "usage: $0 [boot|write-env|refresh]"
      exit 2
      ;;
  esac
}

main "$@"
