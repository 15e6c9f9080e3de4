#!/usr/bin/env bash
# Builds webp-decode.wasm (libwebp's decoder + webp-decode.c) with Debian's
# emscripten. The .wasm is committed; rebuild only to change it.
#
#   apt-get install emscripten
#   bash shared/wasm/build-webp.sh [libwebp source dir]
#
# Without a source dir it runs `apt-get source libwebp` (needs a deb-src line
# in apt's sources) in a temporary directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="${1:-}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ -z "$src" ]; then
  (cd "$work" && apt-get source -qq libwebp >/dev/null)
  src="$(ls -d "$work"/libwebp-*/ | head -1)"
fi
src="${src%/}"
version="$(sed -n 's/^AC_INIT(\[libwebp\], \[\([0-9.]*\)\].*/\1/p' "$src/configure.ac")"
[ -n "$version" ] || { echo "no libwebp version in $src/configure.ac" >&2; exit 1; }

# The decoder's sources: no encoder, no mux, no threads; the C paths only
# (libwebp's SSE2/NEON paths give the same pixels, and are not built for wasm).
sources=""
for f in "$src"/src/dec/*.c "$src"/src/utils/*.c "$src"/src/dsp/*.c; do
  case "$(basename "$f")" in
    *_enc*.c | enc*.c | cost*.c | ssim*.c | bit_writer*.c | huffman_encode*.c | quant_levels_utils.c) continue ;;
    *_sse2.c | *_sse41.c | *_neon.c | *_msa.c | *_mips32.c | *_mips_dsp_r2.c) continue ;;
  esac
  sources="$sources $f"
done
emcc -O3 -flto -msimd128 -mbulk-memory -I"$src" $sources "$here/webp-decode.c" -o "$here/webp-decode.wasm" \
  --no-entry -sSTANDALONE_WASM=1 -sALLOW_MEMORY_GROWTH=1 -sINITIAL_MEMORY=1MB -sMAXIMUM_MEMORY=512MB \
  -sTOTAL_STACK=256KB -sERROR_ON_UNDEFINED_SYMBOLS=0 -sFILESYSTEM=0 \
  -sEXPORTED_FUNCTIONS=_wd_info,_wd_alloc,_wd_free,_wd_decode
cp "$src/COPYING" "$here/LICENSE-libwebp.txt"
cp "$src/PATENTS" "$here/PATENTS-libwebp.txt"
echo "built $here/webp-decode.wasm from libwebp $version ($(wc -c < "$here/webp-decode.wasm") bytes)"
