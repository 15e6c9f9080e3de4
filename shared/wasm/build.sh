#!/usr/bin/env bash
# Builds jpeg-decode.wasm (libjpeg-turbo's decompressor + jpeg-decode.c) with
# Debian's emscripten. The .wasm is committed; rebuild only to change it.
#
#   apt-get install emscripten
#   bash shared/wasm/build.sh [libjpeg-turbo source dir]
#
# Without a source dir it runs `apt-get source libjpeg-turbo` (needs a deb-src
# line in apt's sources) in a temporary directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
src="${1:-}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ -z "$src" ]; then
  (cd "$work" && apt-get source -qq libjpeg-turbo >/dev/null)
  src="$(ls -d "$work"/libjpeg-turbo-*/ | head -1)"
fi
# A copy, so the one change below stays out of the given tree: wasm32 has
# 64-bit integer registers, so the Huffman decoder's 64-bit bit buffer (the
# path libjpeg-turbo takes for x32) applies to it too.
cp -r "$src" "$work/src"
src="$work/src"
sed -i 's/defined(__x86_64__) \&\& defined(__ILP32__)/(defined(__x86_64__) \&\& defined(__ILP32__)) || defined(__wasm32__)/' \
  "$src/jdhuff.h" "$src/jdhuff.c"
grep -q '__wasm32__' "$src/jdhuff.h" || { echo "jdhuff.h: the 64-bit bit buffer patch did not apply" >&2; exit 1; }
version="$(sed -n 's/^set(VERSION \([0-9.]*\)).*/\1/p' "$src/CMakeLists.txt")"
[ -n "$version" ] || { echo "no libjpeg-turbo version in $src/CMakeLists.txt" >&2; exit 1; }
number="$(echo "$version" | awk -F. '{ printf "%d%03d%03d", $1, $2, $3 }')"

# The config headers cmake would write, for a 32-bit wasm target without SIMD.
sed -e "s/@JPEG_LIB_VERSION@/62/; s/@VERSION@/$version/; s/@LIBJPEG_TURBO_VERSION_NUMBER@/$number/" \
  -e 's/@BITS_IN_JSAMPLE@/8/' \
  -e 's/#cmakedefine D_ARITH_CODING_SUPPORTED 1/#define D_ARITH_CODING_SUPPORTED 1/' \
  -e 's/#cmakedefine MEM_SRCDST_SUPPORTED 1/#define MEM_SRCDST_SUPPORTED 1/' \
  -e 's/#cmakedefine \(.*\)/\/* #undef \1 *\//' "$src/jconfig.h.in" > "$work/jconfig.h"
sed -e 's/@BUILD@/protoatlas/; s/@INLINE@/__inline__ __attribute__((always_inline))/; s/@THREAD_LOCAL@//' \
  -e "s/@CMAKE_PROJECT_NAME@/libjpeg-turbo/; s/@VERSION@/$version/; s/@SIZE_T@/4/" \
  -e 's/#cmakedefine HAVE_BUILTIN_CTZL/#define HAVE_BUILTIN_CTZL/' \
  -e 's/#cmakedefine \(.*\)/\/* #undef \1 *\//' "$src/jconfigint.h.in" > "$work/jconfigint.h"
sed -e 's/@COPYRIGHT_YEAR@/2023/' "$src/jversion.h.in" > "$work/jversion.h"

# The CMYK -> sRGB table, sampled from the sharp the trainer uses.
"$root/node_modules/.bin/node" "$here/cmyk-table.ts"
mv "$here/cmyk-srgb-table.h" "$work/"

# Decompression only: no encoder, no transcoder, no SIMD.
files="jcomapi jdapimin jdapistd jdarith jaricom jdatasrc jdcoefct jdcolor jddctmgr jdhuff jdicc jdinput
  jdmainct jdmarker jdmaster jdmerge jdphuff jdpostct jdsample jerror jidctflt jidctfst jidctint jidctred
  jquant1 jquant2 jutils jmemmgr jmemnobs jsimd_none"
sources=""
for f in $files; do sources="$sources $src/$f.c"; done
emcc -O3 -flto -msimd128 -mbulk-memory -I"$work" -I"$src" $sources "$here/jpeg-decode.c" "$here/jpeg-dc-scan.c" -o "$here/jpeg-decode.wasm" \
  --no-entry -sSTANDALONE_WASM=1 -sALLOW_MEMORY_GROWTH=1 -sINITIAL_MEMORY=2MB -sMAXIMUM_MEMORY=512MB \
  -sTOTAL_STACK=256KB -sERROR_ON_UNDEFINED_SYMBOLS=0 -sFILESYSTEM=0 \
  -sEXPORTED_FUNCTIONS=_jd_info,_jd_alloc,_jd_free,_jd_header,_jd_decode
cp "$src/LICENSE.md" "$here/LICENSE-libjpeg-turbo.md"
cp "$src/README.ijg" "$here/README-ijg.txt"
echo "built $here/jpeg-decode.wasm from libjpeg-turbo $version ($(wc -c < "$here/jpeg-decode.wasm") bytes)"
