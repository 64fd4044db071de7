#!/usr/bin/env bash
# The PostgreSQL backup and point-in-time recovery drill (docs/operations.md,
# "Backup and point-in-time recovery"), on a scratch cluster of Debian's own binaries:
#   1. a cluster with WAL archiving to a directory (archive_command);
#   2. rows written, a base backup (pg_basebackup), more rows written;
#   3. the time noted, then a mistake (more rows, and rows deleted);
#   4. the backup restored into a second cluster that replays the archived WAL up to
#      that time (restore_command, recovery_target_time) and is promoted;
#   5. it must hold exactly the rows written before the time: exit 0, else 1.
# Everything lives in one temporary directory, reached over Unix sockets only (no TCP
# port to collide with); both clusters are stopped and the directory removed at the end
# (PITR_KEEP=1 keeps it). As root, the clusters run as the postgres user.
set -euo pipefail

PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
  echo "no PostgreSQL binaries (apt-get install -y postgresql, or set PG_BIN)" >&2
  exit 2
fi
WORK="$(mktemp -d /tmp/pitr-drill.XXXXXX)"
PORT=5432 # per socket directory: the two clusters never share one
PRIMARY="$WORK/primary"
RESTORED="$WORK/restored"
ARCHIVE="$WORK/wal-archive"
BASE="$WORK/base-backup"
PRIMARY_SOCKETS="$WORK/primary-sockets"
RESTORED_SOCKETS="$WORK/restored-sockets"
started=$(date +%s%N)

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
step() {
  local ms=$((($(date +%s%N) - started) / 1000000))
  printf '[%4d.%02ds] %s\n' $((ms / 1000)) $((ms % 1000 / 10)) "$*"
}
sql() { # sql <socket dir> <statement>: one value back
  as_pg "$PG_BIN/psql" -h "$1" -p "$PORT" -U postgres -d drill -qtAX -v ON_ERROR_STOP=1 -c "$2"
}
stop_all() {
  for data in "$PRIMARY" "$RESTORED"; do
    if [ -f "$data/postmaster.pid" ]; then
      as_pg "$PG_BIN/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
    fi
  done
  if [ "${PITR_KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap stop_all EXIT

mkdir -p "$ARCHIVE" "$PRIMARY" "$RESTORED" "$PRIMARY_SOCKETS" "$RESTORED_SOCKETS"
chmod 700 "$PRIMARY" "$RESTORED"
if [ "$(id -u)" = 0 ]; then chown -R postgres: "$WORK"; fi

step "initdb $PRIMARY ($("$PG_BIN/postgres" --version))"
as_pg "$PG_BIN/initdb" -D "$PRIMARY" -U postgres -A trust --no-sync --no-instructions >/dev/null
cat >>"$PRIMARY/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$PRIMARY_SOCKETS'
port = $PORT
wal_level = replica
archive_mode = on
archive_command = 'test ! -f $ARCHIVE/%f && cp %p $ARCHIVE/%f'
EOF
as_pg "$PG_BIN/pg_ctl" -D "$PRIMARY" -l "$WORK/primary.log" -w start >/dev/null
as_pg "$PG_BIN/createdb" -h "$PRIMARY_SOCKETS" -p "$PORT" -U postgres drill
step "primary started with WAL archiving to $ARCHIVE"

sql "$PRIMARY_SOCKETS" "CREATE TABLE gifts (id bigserial PRIMARY KEY, amount_fen bigint NOT NULL)"
sql "$PRIMARY_SOCKETS" "INSERT INTO gifts (amount_fen) SELECT 100 * n FROM generate_series(1, 100) n"
step "100 gifts written"

as_pg "$PG_BIN/pg_basebackup" -h "$PRIMARY_SOCKETS" -p "$PORT" -U postgres -D "$BASE" -Fp -Xstream -c fast --no-sync
step "base backup taken (pg_basebackup -Fp -Xstream) into $BASE"

sql "$PRIMARY_SOCKETS" "INSERT INTO gifts (amount_fen) SELECT 100 * n FROM generate_series(101, 200) n"
TARGET="$(sql "$PRIMARY_SOCKETS" "SELECT clock_timestamp()")"
EXPECTED="$(sql "$PRIMARY_SOCKETS" "SELECT count(*) || ' gifts, ' || sum(amount_fen) || ' fen' FROM gifts")"
step "100 more gifts written; the time noted: $TARGET ($EXPECTED)"

sql "$PRIMARY_SOCKETS" "INSERT INTO gifts (amount_fen) SELECT 100 * n FROM generate_series(201, 300) n"
sql "$PRIMARY_SOCKETS" "DELETE FROM gifts WHERE id <= 50"
LOST="$(sql "$PRIMARY_SOCKETS" "SELECT count(*) || ' gifts, ' || sum(amount_fen) || ' fen' FROM gifts")"
SEGMENT="$(sql "$PRIMARY_SOCKETS" "SELECT pg_walfile_name(pg_switch_wal())")"
until [ "$(sql "$PRIMARY_SOCKETS" "SELECT last_archived_wal FROM pg_stat_archiver")" \> "$SEGMENT" ] \
  || [ "$(sql "$PRIMARY_SOCKETS" "SELECT last_archived_wal FROM pg_stat_archiver")" = "$SEGMENT" ]; do
  sleep 0.2
done
step "after the time: 100 more written, 50 deleted ($LOST); WAL up to $SEGMENT archived"
as_pg "$PG_BIN/pg_ctl" -D "$PRIMARY" -m fast -w stop >/dev/null
step "primary stopped (as if lost)"

as_pg cp -a "$BASE/." "$RESTORED/"
cat >>"$RESTORED/postgresql.auto.conf" <<EOF
unix_socket_directories = '$RESTORED_SOCKETS'
archive_mode = off
restore_command = 'cp $ARCHIVE/%f %p'
recovery_target_time = '$TARGET'
recovery_target_action = 'promote'
EOF
as_pg touch "$RESTORED/recovery.signal"
as_pg "$PG_BIN/pg_ctl" -D "$RESTORED" -l "$WORK/restored.log" -w start >/dev/null
until [ "$(sql "$RESTORED_SOCKETS" "SELECT pg_is_in_recovery()")" = f ]; do sleep 0.2; done
step "base backup restored, archived WAL replayed to $TARGET, promoted"
grep -E "recovery stopping|starting point-in-time recovery|selected new timeline" "$WORK/restored.log" \
  | sed 's/^/    log: /'

GOT="$(sql "$RESTORED_SOCKETS" "SELECT count(*) || ' gifts, ' || sum(amount_fen) || ' fen' FROM gifts")"
if [ "$GOT" = "$EXPECTED" ]; then
  step "PASS: the restored cluster holds $GOT, as at $TARGET (the primary ended with $LOST)"
  exit 0
fi
step "FAIL: the restored cluster holds $GOT, expected $EXPECTED"
exit 1
