#!/usr/bin/env bash
# Proves `cmake --install` ships a usable library: installs the build into a temporary
# prefix, then compiles and runs a program using only `pkg-config --cflags --libs cipc`,
# once against the shared and once against the static library (its dependencies
# linked dynamically).
set -euo pipefail
build=$1
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
cat >"$prefix/app.c" <<'C'
#include <cipc.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    cipc_url u;
    const char *s = "https://example.com:8443/p?q=1";
    if (cipc_url_parse(s, strlen(s), &u) != 0 || u.port_num != 8443)
        return 1;
    printf("cipc %s: %s\n", cipc_version(), cipc_strerror(CIPC_ETIMEOUT));
    return 0;
}
C
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror "$prefix/app.c" -o "$prefix/app" $(pkg-config --cflags --libs cipc)
LD_LIBRARY_PATH="$prefix/lib" "$prefix/app"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror "$prefix/app.c" -o "$prefix/app_static" $(pkg-config --cflags cipc) \
    "$prefix/lib/libcipc.a" $(pkg-config --libs libuv libcurl jansson openssl zlib) -lpthread -lm
"$prefix/app_static"
echo "install_check: ok"
