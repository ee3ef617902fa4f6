#!/usr/bin/env bash
# make install, find_package(ota), pkg-config and the Debian packages, from a
# built tree: installs into a staging prefix, builds a consumer project with
# CMake and one with pkg-config, and builds the .deb files with CPack and lists
# what each holds.
# Usage: check_package.sh BUILD_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
build=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
test -x "$prefix/bin/ota" && test -x "$prefix/bin/ota-agent"
ls "$prefix"/lib*/ota/libota-mqtt.so "$prefix"/lib*/ota/libota-fetch-http.so "$prefix"/lib*/ota/libota-httpd.so \
  "$prefix"/lib*/ota/libota-pkcs11.so >/dev/null
test -f "$prefix/include/ota/fleet/campaign.hpp"
# ota-patch (the static `ota patch`) is built except in sanitizer builds.
has_patcher=0
[ -x "$build/tools/ota-patch" ] && has_patcher=1
if [ $has_patcher = 1 ]; then
  test -x "$prefix/bin/ota-patch"
  # The installed `ota patch` runs the installed ota-patch.
  "$prefix/bin/ota" patch --help | grep -q 'Usage: ota patch'
fi

# find_package(ota)
cmake -S "$src/tests/package/consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
out=$("$work/consumer/consumer")
expected_hash=$(printf abc | b2sum -l 256 | cut -d' ' -f1)
[ "${out%% *}" = "$expected_hash" ] || { echo "consumer printed '$out', expected hash $expected_hash" >&2; exit 1; }

# pkg-config
pc_dir=$(dirname "$(ls "$prefix"/lib*/pkgconfig/ota.pc)")
flags=$(PKG_CONFIG_PATH=$pc_dir pkg-config --cflags --libs ota)
g++ "$src/tests/package/consumer/main.cpp" -o "$work/consumer-pc" $flags
[ "$("$work/consumer-pc")" = "$out" ]

# Debian packages
(cd "$work" && cpack --config "$build/CPackConfig.cmake" -G DEB >/dev/null)
for p in ota ota-agent ota-modules libota-dev; do
  deb=$(ls "$work"/${p}_*.deb)
  dpkg-deb -I "$deb" >/dev/null
done
contents() { dpkg-deb -c "$(ls "$work"/"$1"_*.deb)" | awk '{print $NF}'; }
contents ota | grep -x '\./usr/bin/ota' >/dev/null
contents ota | grep 'bash-completion/completions/ota$' >/dev/null
[ $has_patcher = 0 ] || contents ota | grep -x '\./usr/bin/ota-patch' >/dev/null
contents ota-agent | grep -x '\./usr/bin/ota-agent' >/dev/null
contents ota-agent | grep 'systemd/system/ota-agent.service$' >/dev/null
contents ota-modules | grep 'libota-mqtt.so$' >/dev/null
contents ota-modules | grep 'libota-fetch-http.so$' >/dev/null
contents ota-modules | grep 'libota-httpd.so$' >/dev/null
contents ota-modules | grep 'libota-pkcs11.so$' >/dev/null
contents libota-dev | grep 'cmake/ota/otaConfig.cmake$' >/dev/null
contents libota-dev | grep 'pkgconfig/ota.pc$' >/dev/null
dpkg-deb -f "$work"/ota_*.deb Depends | grep 'ota-modules' >/dev/null
echo "package: install, find_package(ota), pkg-config and 4 Debian packages checked"
