/*
 * webp-decode: a small C API over libwebp's decoder for ProtoAtlas, built to a
 * standalone .wasm (build-webp.sh). It decodes a still WebP held in memory to
 * 8-bit RGBA at a requested size through libwebp's own rescaler, the way
 * libvips' webpload does for the trainer (sharp) when it reads a WebP at a
 * reduced scale: the decoder writes each macroblock row straight into the
 * rescaler, so the full-size picture never exists in memory.
 *
 * Errors are returned as a status (libwebp's VP8StatusCode), never by exit.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include "src/webp/decode.h"

#define EXPORT __attribute__((visibility("default"), used))

/* Filled by wd_decode: stored width and height, alpha flag, status. */
enum { INFO_WIDTH, INFO_HEIGHT, INFO_ALPHA, INFO_STATUS, INFO_LEN };
static uint32_t info[INFO_LEN];

EXPORT uint32_t *wd_info(void) { return info; }
EXPORT void *wd_alloc(size_t n) { return malloc(n); }
EXPORT void wd_free(void *p) { free(p); }

/*
 * Decodes to width x height RGBA (non-premultiplied, as libvips asks for);
 * a size other than the stored one turns on libwebp's scaling. Returns the
 * pixels (free with wd_free) or 0 with the status in info.
 */
EXPORT uint8_t *wd_decode(const uint8_t *src, size_t len, int width, int height) {
  WebPDecoderConfig config;
  info[INFO_STATUS] = VP8_STATUS_OK;
  if (!WebPInitDecoderConfig(&config)) {
    info[INFO_STATUS] = VP8_STATUS_INVALID_PARAM;
    return 0;
  }
  VP8StatusCode status = WebPGetFeatures(src, len, &config.input);
  if (status != VP8_STATUS_OK) {
    info[INFO_STATUS] = status;
    return 0;
  }
  info[INFO_WIDTH] = (uint32_t)config.input.width;
  info[INFO_HEIGHT] = (uint32_t)config.input.height;
  info[INFO_ALPHA] = config.input.has_alpha ? 1 : 0;
  if (width <= 0 || height <= 0) {
    info[INFO_STATUS] = VP8_STATUS_INVALID_PARAM;
    return 0;
  }
  const size_t stride = (size_t)width * 4;
  uint8_t *out = malloc(stride * (size_t)height);
  if (!out) {
    info[INFO_STATUS] = VP8_STATUS_OUT_OF_MEMORY;
    return 0;
  }
  config.output.colorspace = MODE_RGBA;
  config.output.is_external_memory = 1;
  config.output.u.RGBA.rgba = out;
  config.output.u.RGBA.stride = (int)stride;
  config.output.u.RGBA.size = stride * (size_t)height;
  if (width != config.input.width || height != config.input.height) {
    config.options.use_scaling = 1;
    config.options.scaled_width = width;
    config.options.scaled_height = height;
  }
  status = WebPDecode(src, len, &config);
  WebPFreeDecBuffer(&config.output);
  if (status != VP8_STATUS_OK) {
    free(out);
    info[INFO_STATUS] = status;
    return 0;
  }
  return out;
}
