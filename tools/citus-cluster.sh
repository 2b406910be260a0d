#!/usr/bin/env bash
# A Citus cluster on this machine: a coordinator and two workers of Debian's PostgreSQL 15,
# with pgvector and Citus built from the vendored sources, on loopback ports.
#
#   bash tools/citus-cluster.sh install        # packages, pgvector, Citus: once per machine (~5 min)
#   bash tools/citus-cluster.sh start [DIR]    # a new cluster in DIR (default /tmp/hybrid-rag-citus); prints its URL
#   bash tools/citus-cluster.sh url [DIR]      # the coordinator's DATABASE_URL
#   bash tools/citus-cluster.sh stop [DIR] [NODE...]  # stops the servers, or only the named ones
#                                              # (coordinator, worker1, worker2); DIR stays, start restarts them
#   bash tools/citus-cluster.sh remove [DIR]   # stops them and deletes DIR
#
# `install` needs root (or password-less sudo) for apt-get and `make install`; it skips what
# is installed already. `start` runs the servers as the `postgres` user when run as root
# (PostgreSQL refuses to run as root), each with `shared_preload_libraries = 'citus'`,
# trust authentication on loopback only, and a database `hybrid_rag` holding the citus and
# vector extensions; the workers are registered with the coordinator. Ports: CITUS_PORT
# (default 9700) for the coordinator, the next two for the workers; CITUS_SHARD_COUNT
# (default 32, Citus' own) the number of shards each new collection is split into. Both are
# set when DIR is new and kept there: later commands on DIR use them.
set -euo pipefail

# shellcheck source=tools/postgres15.sh
. "$(dirname "${BASH_SOURCE[0]}")/postgres15.sh"

CITUS_VERSION=13.2.2
CITUS_SHA256=c8fc76dc8294636a52b1a0dd75a20d8b4a36937df6443e30ca84d8d0464a6bb9
CITUS_PATCH_SHA256=e16fabd775be762747b83a142b97fc77fbc6aa4f93d011b1decb2d0b0fc42adf
CITUS_DIR_DEFAULT=${TMPDIR:-/tmp}/hybrid-rag-citus
PORT=${CITUS_PORT:-9700}
SHARD_COUNT=${CITUS_SHARD_COUNT:-32}
NODES=(coordinator worker1 worker2)
DATABASE=hybrid_rag

citus_installed() {
    local control
    control="$("$PG15_CONFIG" --sharedir)/extension/citus.control"
    [ -f "$control" ] && [ -f "$("$PG15_CONFIG" --pkglibdir)/citus.so" ] \
        && grep -q "^default_version = '${CITUS_VERSION%.*}" "$control"
}

citus_install() {
    pg15_packages postgresql-15 postgresql-server-dev-15 build-essential libcurl4-openssl-dev liblz4-dev \
        libzstd-dev libkrb5-dev libssl-dev libselinux1-dev libxslt1-dev libpam0g-dev libreadline-dev \
        autoconf flex bison
    pg15_pgvector
    if citus_installed; then
        echo "citus-cluster: Citus $CITUS_VERSION is installed"
        return 0
    fi
    local source patch=$PG15_VENDOR/citus-pg15.18-compat.patch
    echo "$CITUS_PATCH_SHA256  $patch" | sha256sum -c --quiet -
    source=$(pg15_unpack "$PG15_VENDOR/citus-$CITUS_VERSION.tar.gz" "$CITUS_SHA256")
    # PostgreSQL 15.18 exports have_createdb_privilege, which Citus 13.2 also defines: the patch renames Citus' copy
    patch -s -d "$source" -p1 <"$patch"
    echo "citus-cluster: building Citus $CITUS_VERSION (about 4 minutes on 2 cores)"
    (cd "$source" && ./configure -q PG_CONFIG="$PG15_CONFIG" >"$source/configure.log" 2>&1) \
        || { cat "$source/configure.log" >&2; return 1; }
    pg15_make "$source"
    rm -rf "$(dirname "$source")"
    citus_installed || { echo "citus-cluster: Citus did not install" >&2; return 1; }
    echo "citus-cluster: built and installed Citus $CITUS_VERSION"
}

# Run a server tool as the servers' owner.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# A cluster's folder keeps its port and shard count (DIR/port, DIR/shard_count) from its first
# start; once its coordinator is set up (DIR/coordinator.ready) later commands use them, and a
# different CITUS_PORT or CITUS_SHARD_COUNT is refused. A folder whose first start failed
# before that takes the new values.
use_dir() {
    local dir=$1 setting variable kept
    if [ -f "$dir/coordinator/PG_VERSION" ] && [ ! -f "$dir/port" ]; then
        echo "citus-cluster: $dir holds a cluster from an older version of this script: remove it first" >&2
        return 2
    fi
    for setting in port shard_count; do
        [ -f "$dir/$setting" ] && [ -f "$dir/coordinator.ready" ] || continue
        variable=CITUS_${setting^^}
        kept=$(cat "$dir/$setting")
        if [ -n "${!variable:-}" ] && [ "${!variable}" != "$kept" ]; then
            echo "citus-cluster: the cluster in $dir has $variable=$kept, not ${!variable}" >&2
            return 2
        fi
        if [ "$setting" = port ]; then PORT=$kept; else SHARD_COUNT=$kept; fi
    done
}

check_settings() {
    if ! [[ $PORT =~ ^[1-9][0-9]*$ ]] || [ "$PORT" -gt 65533 ]; then
        echo "citus-cluster: CITUS_PORT must be a port number up to 65533 (the workers take the next two)" >&2
        return 2
    fi
    if ! [[ $SHARD_COUNT =~ ^[1-9][0-9]*$ ]] || [ "$SHARD_COUNT" -gt 64000 ]; then
        echo "citus-cluster: CITUS_SHARD_COUNT must be a whole number from 1 to 64000" >&2
        return 2
    fi
}

node_port() {
    local index=$1
    echo $((PORT + index))
}

sql() {
    local port=$1
    shift
    PGOPTIONS="-c client_min_messages=warning" as_owner "$PG15_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "$port" -U postgres "$@"
}

citus_start() {
    local dir=${1:-$CITUS_DIR_DEFAULT} index node port data nodes
    citus_installed || { echo "citus-cluster: Citus is not installed: run 'bash tools/citus-cluster.sh install'" >&2; return 1; }
    use_dir "$dir"
    check_settings
    mkdir -p "$dir"
    echo "$PORT" >"$dir/port"
    echo "$SHARD_COUNT" >"$dir/shard_count"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    for index in "${!NODES[@]}"; do
        node=${NODES[$index]}
        port=$(node_port "$index")
        data=$dir/$node
        if [ ! -f "$data/PG_VERSION" ]; then
            as_owner "$PG15_BIN/initdb" --pgdata "$data" --username postgres --auth trust --encoding UTF8 \
                --locale C.UTF-8 --no-sync >"$dir/$node-initdb.log" 2>&1 \
                || { cat "$dir/$node-initdb.log" >&2; return 1; }
        fi
        if ! as_owner "$PG15_BIN/pg_ctl" --pgdata "$data" status >/dev/null 2>&1; then
            as_owner "$PG15_BIN/pg_ctl" --pgdata "$data" --log "$dir/$node.log" --wait --silent start -o \
                "-p $port -k $dir -c listen_addresses=127.0.0.1 -c shared_preload_libraries=citus -c fsync=off -c full_page_writes=off -c max_connections=200" \
                || { tail -n 20 "$dir/$node.log" >&2; return 1; }
        fi
        if [ ! -f "$dir/$node.ready" ]; then  # set up once; again if an earlier start stopped half-way
            # the shard count is kept in the node's own configuration: a restart keeps it
            sql "$port" -c "ALTER SYSTEM SET citus.shard_count = $SHARD_COUNT" -c "SELECT pg_reload_conf()" >/dev/null
            if [ -z "$(sql "$port" -At -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" ]; then
                sql "$port" -c "CREATE DATABASE $DATABASE"
            fi
            sql "$port" -d "$DATABASE" -c "CREATE EXTENSION IF NOT EXISTS citus" -c "CREATE EXTENSION IF NOT EXISTS vector"
            touch "$dir/$node.ready"
        fi
    done
    local coordinator
    coordinator=$(node_port 0)
    nodes=$(sql "$coordinator" -d "$DATABASE" -At -c "SELECT count(*) FROM pg_dist_node WHERE noderole = 'primary'")
    if [ "$nodes" -lt 3 ]; then
        sql "$coordinator" -d "$DATABASE" -c "SELECT citus_set_coordinator_host('127.0.0.1', $coordinator)" >/dev/null
        for index in 1 2; do
            sql "$coordinator" -d "$DATABASE" -c "SELECT citus_add_node('127.0.0.1', $(node_port "$index"))" >/dev/null
        done
    fi
    citus_url "$dir"
}

citus_url() {
    local dir=${1:-$CITUS_DIR_DEFAULT}
    [ -f "$dir/port" ] || { echo "citus-cluster: no cluster in $dir" >&2; return 2; }
    use_dir "$dir"
    echo "postgresql://postgres@127.0.0.1:$(node_port 0)/$DATABASE"
}

citus_stop() {
    local dir=${1:-$CITUS_DIR_DEFAULT} node
    shift || true
    [ -f "$dir/port" ] || [ -f "$dir/coordinator/PG_VERSION" ] || { echo "citus-cluster: no cluster in $dir" >&2; return 2; }
    [ $# -gt 0 ] || set -- "${NODES[@]}"
    for node in "$@"; do
        [[ " ${NODES[*]} " == *" $node "* ]] || { echo "citus-cluster: no node $node (${NODES[*]})" >&2; return 2; }
    done
    for node in "$@"; do
        if [ -f "$dir/$node/PG_VERSION" ]; then
            as_owner "$PG15_BIN/pg_ctl" --pgdata "$dir/$node" --mode fast --wait --silent stop 2>/dev/null || true
        fi
    done
}

citus_remove() {
    local dir=${1:-$CITUS_DIR_DEFAULT}
    [ -e "$dir" ] || return 0
    if [ ! -f "$dir/port" ] && [ ! -f "$dir/coordinator/PG_VERSION" ]; then
        echo "citus-cluster: $dir holds no cluster: not removing it" >&2
        return 2
    fi
    citus_stop "$dir"
    rm -rf "$dir"
}

case "${1:-}" in
    install) citus_install ;;
    start) citus_start "${2:-}" ;;
    url) citus_url "${2:-}" ;;
    stop) citus_stop "${@:2}" ;;
    remove) citus_remove "${2:-}" ;;
    *)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
