#!/usr/bin/env bash
# Starts Debian's PostgreSQL cluster (pg_ctlcluster) if it is down and makes sure
# the test role and database exist. Idempotent. Prints the database URL.
set -euo pipefail
USER_NAME="${CHARITY_PG_USER:-charity}"
PASSWORD="${CHARITY_PG_PASSWORD:-charity}"
DB_NAME="${CHARITY_PG_DB:-charity_test}"

if ! command -v pg_lsclusters >/dev/null; then
  echo "PostgreSQL is not installed (apt-get install -y postgresql)" >&2
  exit 1
fi
read -r VERSION CLUSTER PORT STATUS _ < <(pg_lsclusters --no-header | head -1)
if [ -z "${VERSION:-}" ]; then
  echo "no PostgreSQL cluster found (pg_createcluster)" >&2
  exit 1
fi
if [ "$STATUS" != "online" ]; then
  pg_ctlcluster "$VERSION" "$CLUSTER" start >&2
fi
as_postgres() { if [ "$(id -u)" = 0 ]; then su postgres -c "$*"; else sudo -u postgres sh -c "$*"; fi; }
as_postgres "psql -p $PORT -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='$USER_NAME'\"" | grep -q 1 \
  || as_postgres "psql -p $PORT -qc \"CREATE ROLE $USER_NAME LOGIN CREATEDB PASSWORD '$PASSWORD'\"" >&2
as_postgres "psql -p $PORT -qtAc \"SELECT 1 FROM pg_database WHERE datname='$DB_NAME'\"" | grep -q 1 \
  || as_postgres "createdb -p $PORT -O $USER_NAME $DB_NAME" >&2
echo "postgresql+psycopg://$USER_NAME:$PASSWORD@127.0.0.1:$PORT/$DB_NAME"
