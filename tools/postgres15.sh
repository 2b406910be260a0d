#!/usr/bin/env bash
# Debian's PostgreSQL 15 with pgvector, for the tests that need a server the embedded one
# cannot stand in for (extensions it lacks, such as unaccent).
#
#   bash tools/postgres15.sh          # as root, or as a user with password-less sudo
#
# Installs postgresql-15 (with its contrib modules: unaccent), postgresql-server-dev-15 and
# build-essential from the Debian archive, then builds pgvector from the vendored release
# tarball (checksum pinned; HYBRID_RAG_VENDOR, default ../shared/vendor beside the repo)
# with OPTFLAGS="" (portable: SIMD paths picked at run time) and installs it into that
# server. Idempotent: what is installed already is skipped. Starts no server: the tests
# run a throwaway cluster of their own (tests/postgres15.py).
#
# Sourced (`. tools/postgres15.sh`), it only defines its functions, for scripts that build
# more extensions on the same server:
#   pg15_packages PKG...            apt-get install what is missing (as root or via sudo)
#   pg15_unpack TARBALL SHA256      check and extract a vendored tarball; prints the source folder
#   pg15_make DIR [MAKE ARGS...]    build and install an extension against this server
set -euo pipefail

PG15_BIN=/usr/lib/postgresql/15/bin
PG15_CONFIG=$PG15_BIN/pg_config
PG15_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG15_VENDOR=${HYBRID_RAG_VENDOR:-$PG15_ROOT/../shared/vendor}
PGVECTOR_VERSION=0.8.6
PGVECTOR_SHA256=b4eb8abc425b465082ae5955d13df5338c32ec1bd441f0eb86d780e3958766a6

pg15_as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        echo "postgres15: '$*' needs root: run this script as root or as a user with password-less sudo" >&2
        return 1
    fi
}

pg15_packages() {
    local missing=() package
    for package in "$@"; do
        dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    # All of them, not just the missing ones: the server and its headers stay at one version.
    echo "postgres15: installing $*"
    pg15_as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
    pg15_as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "$@" >/dev/null
}

pg15_unpack() {
    local tarball=$1 sha256=$2 work
    if [ ! -f "$tarball" ]; then
        echo "postgres15: $tarball is missing (set HYBRID_RAG_VENDOR to the folder of the vendored sources)" >&2
        return 1
    fi
    echo "$sha256  $tarball" | sha256sum -c --quiet - >&2
    work=$(mktemp -d "${TMPDIR:-/tmp}/hybrid-rag-build-XXXXXX")
    tar -xzf "$tarball" -C "$work"
    find "$work" -mindepth 1 -maxdepth 1 -type d | head -n 1
}

pg15_make() {
    local source=$1
    shift
    make -s -C "$source" -j2 PG_CONFIG="$PG15_CONFIG" "$@" >"$source/build.log" 2>&1 \
        || { cat "$source/build.log" >&2; return 1; }
    pg15_as_root make -s -C "$source" PG_CONFIG="$PG15_CONFIG" "$@" install >>"$source/build.log" 2>&1 \
        || { cat "$source/build.log" >&2; return 1; }
}

pg15_pgvector() {
    local control source
    control="$("$PG15_CONFIG" --sharedir)/extension/vector.control"
    if [ -f "$control" ] && grep -q "^default_version = '$PGVECTOR_VERSION'" "$control" \
        && [ -f "$("$PG15_CONFIG" --pkglibdir)/vector.so" ]; then
        return 0
    fi
    source=$(pg15_unpack "$PG15_VENDOR/pgvector-$PGVECTOR_VERSION.tar.gz" "$PGVECTOR_SHA256")
    pg15_make "$source" OPTFLAGS=""
    rm -rf "$(dirname "$source")"
    echo "postgres15: built and installed pgvector $PGVECTOR_VERSION"
}

pg15_main() {
    pg15_packages postgresql-15 postgresql-server-dev-15 build-essential
    pg15_pgvector
    if [ ! -f "$("$PG15_CONFIG" --sharedir)/extension/unaccent.control" ]; then
        echo "postgres15: the server has no unaccent extension (postgresql-15 ships it)" >&2
        return 1
    fi
    echo "postgres15: $("$PG15_BIN/postgres" --version), pgvector $PGVECTOR_VERSION, unaccent: ready"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    pg15_main "$@"
fi
