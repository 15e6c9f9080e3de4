/*
 * jpeg-decode: a small C API over libjpeg-turbo's decompressor for ProtoAtlas,
 * built to a standalone .wasm (build.sh). It decodes a JPEG held in memory to
 * 8-bit RGB at 1/1, 1/2, 1/4 or 1/8 scale (libjpeg's DCT-domain scaling), the
 * way libvips' jpegload does for the trainer (sharp): baseline, progressive and
 * arithmetic JPEGs; grey replicated to RGB; CMYK and YCCK read as CMYK and
 * turned into sRGB through a table sampled from
 * libvips' own CMYK -> sRGB transform (cmyk-srgb-table.h, made by
 * cmyk-table.ts), so the colours are the trainer's.
 *
 * The file buffer handed to jd_decode may be changed (see drop_unused_ac_scans
 * and jpeg-dc-scan.c). A baseline file read where some component is output one
 * pixel per block is entropy-decoded by jpeg-dc-scan.c instead of libjpeg's
 * decoder (same pixels).
 *
 * Errors: libjpeg's fatal errors call the imported jd_fail(message), which
 * throws in JavaScript; the caller then drops this instance (its heap may hold
 * a half-built decoder) and makes a fresh one. Warnings are counted, not printed.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "jpeglib.h"
#include "cmyk-srgb-table.h"
#include "jpeg-dc-scan.h"

__attribute__((import_module("env"), import_name("jd_fail"))) void jd_fail(const char *message);

#define EXPORT __attribute__((visibility("default"), used))

/* Filled by jd_header and jd_decode; read by JavaScript through jd_info(). */
enum { INFO_WIDTH, INFO_HEIGHT, INFO_COLOR_SPACE, INFO_PROGRESSIVE, INFO_WARNINGS, INFO_ADOBE, INFO_DC_SCAN, INFO_LEN };
/* INFO_DC_SCAN after jd_decode: jpeg-dc-scan.c not used, used, or used and then decoded again without it. */
enum { DC_SCAN_UNUSED, DC_SCAN_USED, DC_SCAN_FELL_BACK };
/* jd_decode flags */
enum { JD_NO_DC_SCAN = 1 };
static uint32_t info[INFO_LEN];

static void fail_exit(j_common_ptr cinfo) {
  char text[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, text);
  jd_fail(text);
  abort(); /* jd_fail never returns */
}

static void no_output(j_common_ptr cinfo) { (void)cinfo; }

static void count_warnings(j_common_ptr cinfo, int level) {
  if (level < 0) info[INFO_WARNINGS]++;
  (void)cinfo;
}

EXPORT uint32_t *jd_info(void) { return info; }
EXPORT void *jd_alloc(size_t n) { return malloc(n); }
EXPORT void jd_free(void *p) { free(p); }

static void open_decoder(struct jpeg_decompress_struct *cinfo, struct jpeg_error_mgr *err,
                         const uint8_t *src, size_t len) {
  cinfo->err = jpeg_std_error(err);
  err->error_exit = fail_exit;
  err->output_message = no_output;
  err->emit_message = count_warnings;
  jpeg_create_decompress(cinfo);
  jpeg_mem_src(cinfo, src, (unsigned long)len);
  jpeg_read_header(cinfo, TRUE);
  info[INFO_WIDTH] = cinfo->image_width;
  info[INFO_HEIGHT] = cinfo->image_height;
  info[INFO_COLOR_SPACE] = cinfo->jpeg_color_space;
  info[INFO_PROGRESSIVE] = cinfo->progressive_mode ? 1 : 0;
  info[INFO_ADOBE] = cinfo->saw_Adobe_marker ? 1 : 0;
}

/* Header only: fills info (stored size, colour space). Returns 1. */
EXPORT int jd_header(const uint8_t *src, size_t len) {
  struct jpeg_decompress_struct cinfo;
  struct jpeg_error_mgr err;
  info[INFO_WARNINGS] = 0;
  open_decoder(&cinfo, &err, src, len);
  jpeg_destroy_decompress(&cinfo);
  return 1;
}

static uint8_t clamp_byte(float v) {
  return v <= 0.f ? 0 : v >= 255.f ? 255 : (uint8_t)(v + 0.5f);
}

/*
 * One CMYK pixel to sRGB the way lcms evaluates its 4-input table: each ink
 * at position v * (NODES - 1) / 255 on the grid; tetrahedral interpolation
 * over M, Y, K in the two nearest C planes, then linear in C.
 */
static void cmyk_to_rgb(const uint8_t *cmyk, uint8_t *rgb) {
  const int n = CMYK_TABLE_NODES;
  int idx[4];
  float f[4];
  for (int i = 0; i < 4; i++) {
    const float pos = (float)cmyk[i] * (float)(n - 1) / 255.f;
    idx[i] = (int)pos;
    if (idx[i] > n - 2) idx[i] = n - 2;
    f[i] = pos - (float)idx[i];
  }
  /* node (c, m, y, k) sits at ((c * n + m) * n + y) * n + k */
  const int sk = 1, sy = n, sm = n * n, sc = n * n * n;
  const float rx = f[1], ry = f[2], rz = f[3];
  int a, b;
  float fa, fb, fc;
  /* order the three fractions to pick the tetrahedron */
  if (rx >= ry && ry >= rz) { a = sm; b = sm + sy; fa = rx; fb = ry; fc = rz; }
  else if (rx >= rz && rz >= ry) { a = sm; b = sm + sk; fa = rx; fb = rz; fc = ry; }
  else if (rz >= rx && rx >= ry) { a = sk; b = sk + sm; fa = rz; fb = rx; fc = ry; }
  else if (ry >= rx && rx >= rz) { a = sy; b = sy + sm; fa = ry; fb = rx; fc = rz; }
  else if (ry >= rz && rz >= rx) { a = sy; b = sy + sk; fa = ry; fb = rz; fc = rx; }
  else { a = sk; b = sk + sy; fa = rz; fb = ry; fc = rx; }
  const int full = sm + sy + sk;
  float out[2][3];
  for (int cc = 0; cc < 2; cc++) {
    const uint8_t *t = cmyk_srgb_table + (size_t)((idx[0] + cc) * sc + idx[1] * sm + idx[2] * sy + idx[3] * sk) * 3;
    for (int ch = 0; ch < 3; ch++) {
      const float c0 = t[ch], ca = t[a * 3 + ch], cb = t[b * 3 + ch], cf = t[full * 3 + ch];
      out[cc][ch] = c0 + (ca - c0) * fa + (cb - ca) * fb + (cf - cb) * fc;
    }
  }
  for (int ch = 0; ch < 3; ch++) rgb[ch] = clamp_byte(out[0][ch] + (out[1][ch] - out[0][ch]) * f[0]);
}

/* Index of the next marker at or after i in entropy-coded data (RSTn and stuffed 0xFF00 are data). */
static size_t next_marker(const uint8_t *b, size_t len, size_t i) {
  for (;;) {
    const uint8_t *f = memchr(b + i, 0xff, len - i);
    if (!f) return len;
    i = (size_t)(f - b);
    if (i + 1 >= len) return len;
    const uint8_t m = b[i + 1];
    if (m != 0x00 && m != 0xff && !(m >= 0xd0 && m <= 0xd7)) return i;
    i += m == 0xff ? 1 : 2;
  }
}

/*
 * A progressive file read at a scale where some components are output one
 * pixel per block (DCT_scaled_size 1) needs only those components' DC
 * coefficients: the 1x1 inverse DCT reads nothing else. Their AC scans
 * (single-component by the standard) are cut out of the file in place, so
 * libjpeg never entropy-decodes them. Returns the new length.
 */
static size_t drop_unused_ac_scans(uint8_t *b, size_t len, const struct jpeg_decompress_struct *cinfo) {
  int drop_id[MAX_COMPONENTS];
  int n_drop = 0;
  for (int c = 0; c < cinfo->num_components; c++)
    if (cinfo->comp_info[c].DCT_scaled_size == 1) drop_id[n_drop++] = cinfo->comp_info[c].component_id;
  if (n_drop == 0) return len;
  size_t r = 2, w = 2; /* after SOI */
  while (r + 4 <= len && b[r] == 0xff) {
    const uint8_t m = b[r + 1];
    if (m == 0xff) { r++; continue; } /* fill byte */
    if (m == 0xd9) break;             /* EOI */
    const size_t seg = 2 + ((size_t)b[r + 2] << 8 | b[r + 3]);
    if (r + seg > len) break;
    size_t end = r + seg;
    int drop = 0;
    if (m == 0xda) {
      end = next_marker(b, len, end);
      const int ns = b[r + 4];
      const size_t spec = r + 5 + 2 * (size_t)ns; /* Ss, Se, Ah/Al */
      if (ns == 1 && spec < len && b[spec] > 0)
        for (int k = 0; k < n_drop; k++) drop |= b[r + 5] == drop_id[k];
    }
    if (!drop) {
      memmove(b + w, b + r, end - r);
      w += end - r;
    }
    r = end;
  }
  /* The rest (EOI, or whatever a damaged file has left) as it is. */
  memmove(b + w, b + r, len - r);
  return w + (len - r);
}

/*
 * Decodes at 1/denom (1, 2, 4 or 8) to packed RGB, width x height in info.
 * As libvips' jpegload: the scaled size rounds down (libjpeg rounds up and
 * fills the partial last column and row, which libvips drops), and CMYK is
 * always read as inverted (Adobe's convention, which libvips applies to every
 * CMYK JPEG). With dc_scan, jpeg-dc-scan.c decodes the entropy data when it
 * applies; NULL when it met data it leaves to libjpeg. Returns the pixels
 * (free with jd_free).
 */
static uint8_t *decode(uint8_t *src, size_t len, int denom, int dc_scan) {
  struct jpeg_decompress_struct cinfo;
  struct jpeg_error_mgr err;
  info[INFO_WARNINGS] = 0;
  open_decoder(&cinfo, &err, src, len);
  cinfo.scale_num = 1;
  cinfo.scale_denom = (unsigned)denom;
  if (cinfo.progressive_mode) {
    jpeg_calc_output_dimensions(&cinfo);
    const size_t cut = drop_unused_ac_scans(src, len, &cinfo);
    if (cut != len) {
      jpeg_destroy_decompress(&cinfo);
      len = cut;
      open_decoder(&cinfo, &err, src, len);
      cinfo.scale_num = 1;
      cinfo.scale_denom = (unsigned)denom;
      /* With every scan present smoothing is off anyway; without the cut ones it must stay off. */
      cinfo.do_block_smoothing = FALSE;
    }
  }
  const int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  /* libjpeg turns YCCK into CMYK itself; grey and YCbCr into RGB */
  cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  const int fast = dc_scan && dc_scan_install(&cinfo);
  info[INFO_DC_SCAN] = fast ? DC_SCAN_USED : DC_SCAN_UNUSED;
  const uint32_t w = cinfo.image_width / (unsigned)denom, h = cinfo.image_height / (unsigned)denom;
  if (w == 0 || h == 0) jd_fail("the image is smaller than the decoding scale");
  info[INFO_WIDTH] = w;
  info[INFO_HEIGHT] = h;
  uint8_t *out = malloc((size_t)w * h * 3);
  const size_t row_bytes = (size_t)cinfo.output_width * (cmyk ? 4 : 3);
  uint8_t *row = malloc(row_bytes);
  if (!out || !row) jd_fail("out of memory for the decoded image");
  while (cinfo.output_scanline < h) {
    uint8_t *dst = out + (size_t)cinfo.output_scanline * w * 3;
    JSAMPROW rows[1] = { row };
    jpeg_read_scanlines(&cinfo, rows, 1);
    if (!cmyk) {
      memcpy(dst, row, (size_t)w * 3);
      continue;
    }
    for (uint32_t x = 0; x < w; x++) {
      uint8_t *p = row + x * 4;
      p[0] = 255 - p[0]; p[1] = 255 - p[1]; p[2] = 255 - p[2]; p[3] = 255 - p[3];
      cmyk_to_rgb(p, dst + x * 3);
    }
  }
  /* The rows past h (a partial last row at this scale) are not needed. */
  jpeg_abort_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  free(row);
  if (fast && dc_scan_failed()) {
    free(out);
    return NULL;
  }
  return out;
}

/*
 * decode(), with jpeg-dc-scan.c unless flags has JD_NO_DC_SCAN. NULL (info
 * INFO_DC_SCAN = DC_SCAN_FELL_BACK) when jpeg-dc-scan.c met data it leaves to
 * libjpeg: it has changed src, so the caller decodes a fresh copy with
 * JD_NO_DC_SCAN.
 */
EXPORT uint8_t *jd_decode(uint8_t *src, size_t len, int denom, int flags) {
  uint8_t *out = decode(src, len, denom, !(flags & JD_NO_DC_SCAN));
  if (!out) info[INFO_DC_SCAN] = DC_SCAN_FELL_BACK;
  return out;
}
