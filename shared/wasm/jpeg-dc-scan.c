/*
 * jpeg-dc-scan: a Huffman decoder for a baseline JPEG read at a scale where a
 * component comes out one pixel per block (luma at 1/8; every component of a
 * 4:4:4 or grey file). libjpeg's 1x1 inverse DCT (jpeg_idct_1x1) reads only
 * the DC coefficient, yet a sequential file gives no way to find the next
 * block but to decode every AC symbol before it. libjpeg does that one symbol
 * at a time; here, for the blocks whose AC values are not needed, a table
 * indexed by the next SKIP_BITS bits of the stream gives the bits and the
 * coefficient positions that several whole symbols (code and value bits)
 * take, so a block is skipped in a few steps. Blocks whose AC values are
 * needed (chroma output 2x2 per block at 1/8 in a 4:2:0 file) are decoded in
 * full, as libjpeg does.
 *
 * It replaces libjpeg's decode_mcu only: libjpeg still parses the headers,
 * zeroes the MCU buffer, runs the inverse DCT, upsampling and colour
 * conversion, so for valid data the pixels are libjpeg's, bit for bit.
 * Anything libjpeg would treat specially (a Huffman code not in the table, a
 * marker or the end of the data inside the scan, a restart marker out of
 * sequence) is not imitated: dc_scan_failed() reports it and the caller
 * decodes again with libjpeg's own decoder. The entropy-coded data is
 * unstuffed in place as it is read, so that second decode needs a fresh copy
 * of the file.
 *
 * One decoder at a time (static state): the wasm module is single-threaded.
 */
#define JPEG_INTERNALS /* jpeglib.h then declares libjpeg's modules (jpegint.h) */
#include "jpeg-dc-scan.h"
#include <stdlib.h>
#include <string.h>
#include <wasm_simd128.h>

/* Bits of lookahead for one Huffman code (DC, and AC values that are kept). */
#define LOOK_BITS 10
/*
 * Bits of lookahead for the AC skip table: its 2-byte entries (32 KB) stay in
 * the L1 cache, and a refill (56 bits or more) covers four steps.
 */
#define SKIP_BITS 14
_Static_assert(4 * SKIP_BITS <= 56, "four skip steps per refill");

typedef struct {
  /* (code length << 8 | symbol) for codes up to LOOK_BITS long, 0 for longer codes */
  uint16_t look[1 << LOOK_BITS];
  /* canonical decoding of longer codes: largest code of each length (-1: none), offset into val */
  int32_t maxcode[18];
  int32_t valoffset[18];
  uint8_t val[256];
} huff_table;

/*
 * A skip-table entry for the next SKIP_BITS bits at an AC symbol boundary
 * covers the symbols that fit whole (code and value bits), up to and
 * including an end of block, while their positions add up to at most 63.
 * Fields: their bits; `need`, the positions they advance plus one for an end
 * of block, so they all lie in the block when k + need <= 64; and whether the
 * last one ends the block. When not even one symbol fits, need is 127.
 */
typedef uint16_t skip_entry;
#define SK_BITS(e) ((e) & 31)
#define SK_NEED(e) (((e) >> 5) & 127)
#define SK_EOB(e) ((e) >> 12)

/*
 * The entropy-coded data of one restart interval (or of the whole scan),
 * unstuffed in place (FF00 -> FF) before it is read, so the reader loads 8
 * bytes at a time without looking for markers. Past its end it reads zeros,
 * as libjpeg does past a marker.
 */
typedef struct {
  const uint8_t *q;   /* next byte to load; past end once zeros are being read */
  const uint8_t *end; /* end of the unstuffed data */
  uint64_t buf;       /* the next nbits bits, from the most significant; zeros below */
  int nbits;
} bit_reader;

enum { MAX_TABLES = NUM_HUFF_TBLS };

static struct {
  int failed;
  bit_reader br;
  uint8_t *marker;    /* where the marker that ends the current segment starts (or the end of the file) */
  uint8_t *file_end;
  int restarts_to_go;
  int next_restart;
  int last_dc[MAX_COMPS_IN_SCAN];
  /* per block of the MCU */
  int comp[D_MAX_BLOCKS_IN_MCU];
  int dc_only[D_MAX_BLOCKS_IN_MCU];
  const huff_table *dc_tbl[D_MAX_BLOCKS_IN_MCU];
  const huff_table *ac_tbl[D_MAX_BLOCKS_IN_MCU];
  const skip_entry *skip_tbl[D_MAX_BLOCKS_IN_MCU];
  /* kept between decodes so nothing is allocated per image */
  huff_table dc[MAX_TABLES], ac[MAX_TABLES];
  skip_entry *skip[MAX_TABLES];
} st;

int dc_scan_failed(void) { return st.failed; }

static void build_huff_table(huff_table *t, const JHUFF_TBL *h) {
  memset(t->look, 0, sizeof t->look);
  memcpy(t->val, h->huffval, sizeof t->val);
  int p = 0;
  uint32_t code = 0;
  for (int l = 1; l <= 16; l++) {
    const int n = h->bits[l];
    t->valoffset[l] = p - (int32_t)code;
    for (int i = 0; i < n; i++, p++, code++) {
      if (l <= LOOK_BITS) {
        const int shift = LOOK_BITS - l;
        for (uint32_t j = code << shift; j < (code + 1) << shift; j++)
          t->look[j] = (uint16_t)(l << 8 | h->huffval[p]);
      }
    }
    t->maxcode[l] = n ? (int32_t)code - 1 : -1;
    code <<= 1;
  }
  t->maxcode[17] = 0x7fffffff; /* stops the canonical search */
}

/*
 * The symbol whose code starts the 16 bits in `bits` (most significant first),
 * if its code is at most `avail` bits long; -1 if not. Its length in *len.
 */
static int code_at(const huff_table *t, uint32_t bits, int avail, int *len) {
  const uint16_t e = t->look[bits >> (16 - LOOK_BITS)];
  if (e) {
    *len = e >> 8;
    return *len <= avail ? (e & 0xff) : -1;
  }
  for (int l = LOOK_BITS + 1; l <= avail && l <= 16; l++) {
    const int32_t c = (int32_t)(bits >> (16 - l));
    if (c <= t->maxcode[l]) {
      *len = l;
      return t->val[(t->valoffset[l] + c) & 0xff];
    }
  }
  return -1;
}

static void build_skip_table(skip_entry *skip, const huff_table *t) {
  const uint32_t mask = (1u << SKIP_BITS) - 1;
  for (uint32_t i = 0; i <= mask; i++) {
    int used = 0, adv = 0, eob = 0, n = 0;
    while (!eob) {
      const int rem = SKIP_BITS - used;
      if (rem <= 0) break;
      const uint32_t bits = ((i << used) & mask) << (16 - SKIP_BITS);
      int len;
      const int sym = code_at(t, bits, rem, &len);
      if (sym < 0) break;
      const int s = sym & 15, run = sym >> 4;
      if (used + len + s > SKIP_BITS) break;
      /* a zero value with a run below 15 ends the block, as libjpeg reads it */
      const int a = s || run == 15 ? run + 1 : 0;
      if (adv + a > 63) break;
      eob = !s && run != 15;
      used += len + s;
      adv += a;
      n++;
    }
    skip[i] = (skip_entry)(n ? used | (adv + eob) << 5 | eob << 12 : 127 << 5);
  }
}

/*
 * Unstuffs the segment from p up to the next marker (any 0xFF not followed by
 * 0x00) in place: sets st.marker to it and starts the reader on the data.
 */
static void start_segment(uint8_t *p) {
  uint8_t *const start = p;
  uint8_t *w = p, *end = st.file_end;
  const v128_t ff = wasm_i8x16_splat((int8_t)0xff);
  for (;;) {
    /* 16 bytes at a time up to the next 0xFF */
    while (end - p >= 16) {
      const v128_t v = wasm_v128_load(p);
      if (wasm_v128_any_true(wasm_i8x16_eq(v, ff))) break;
      wasm_v128_store(w, v);
      p += 16;
      w += 16;
    }
    uint8_t *f = memchr(p, 0xff, (size_t)(end - p));
    if (!f) f = end;
    if (w != p) memmove(w, p, (size_t)(f - p));
    w += f - p;
    if (f + 1 < end && f[1] == 0) {
      *w++ = 0xff;
      p = f + 2;
      continue;
    }
    st.marker = f;
    break;
  }
  st.br.q = start;
  st.br.end = w;
  st.br.buf = 0;
  st.br.nbits = 0;
}

static inline uint64_t load_be64(const uint8_t *p) {
  v128_t v = wasm_v128_load64_zero(p);
  v = wasm_i8x16_swizzle(v, wasm_i8x16_make(7, 6, 5, 4, 3, 2, 1, 0, 8, 9, 10, 11, 12, 13, 14, 15));
  return (uint64_t)wasm_i64x2_extract_lane(v, 0);
}

/* Tops the buffer up to at least 56 bits. */
static inline void refill(bit_reader *b) {
  if (b->q + 8 <= b->end) {
    /* the bytes past the whole ones taken are or-ed in again, identically, by the next refill */
    b->buf |= load_be64(b->q) >> b->nbits;
    b->q += (63 - b->nbits) >> 3;
    b->nbits |= 56;
    return;
  }
  while (b->nbits <= 56) {
    const uint64_t c = b->q < b->end ? *b->q : 0;
    b->q++;
    b->buf |= c << (56 - b->nbits);
    b->nbits += 8;
  }
}

/* The next n bits (1 <= n <= nbits), not consumed. */
#define PEEK(b, n) ((uint32_t)((b).buf >> (64 - (n))))
#define DROP(b, n) ((b).buf <<= (n), (b).nbits -= (n))

/* HUFF_EXTEND: s value bits v to the signed value (1 <= s <= 15). */
static inline int extend(uint32_t v, int s) { return v < (1u << (s - 1)) ? (int)v - (1 << s) + 1 : (int)v; }

/* Bits of the segment not yet read; negative once zeros past its end have been read. */
static inline ptrdiff_t bits_left(const bit_reader *b) { return (b->end - b->q) * 8 + b->nbits; }

/* One Huffman symbol (nbits >= 16); -1 for a code not in the table. */
static inline int decode_symbol(bit_reader *b, const huff_table *t) {
  const uint16_t e = t->look[PEEK(*b, LOOK_BITS)];
  if (e) {
    DROP(*b, e >> 8);
    return e & 0xff;
  }
  int len;
  const int sym = code_at(t, PEEK(*b, 16), 16, &len);
  if (sym >= 0) DROP(*b, len);
  return sym;
}

/* Reads the RSTn marker that must end a restart interval (only its padding bits may be left) and the next one. */
static int restart(void) {
  if (bits_left(&st.br) >= 8) return 0;
  uint8_t *p = st.marker;
  while (p + 1 < st.file_end && p[0] == 0xff && p[1] == 0xff) p++; /* fill bytes */
  if (p + 1 >= st.file_end || p[1] != 0xd0 + st.next_restart) return 0;
  st.next_restart = (st.next_restart + 1) & 7;
  memset(st.last_dc, 0, sizeof st.last_dc);
  start_segment(p + 2);
  return 1;
}

static boolean decode_mcu(j_decompress_ptr cinfo, JBLOCKROW *MCU_data) {
  /* After a failure the caller decodes again; the blocks stay zero. (No MCU_data: skipping, not used.) */
  if (st.failed || !MCU_data) {
    st.failed = 1;
    return TRUE;
  }
  if (cinfo->restart_interval) {
    if (st.restarts_to_go == 0) {
      if (!restart()) {
        st.failed = 1;
        return TRUE;
      }
      st.restarts_to_go = (int)cinfo->restart_interval;
    }
    st.restarts_to_go--;
  }
  bit_reader b = st.br;
  const int blocks = cinfo->blocks_in_MCU;
  for (int blkn = 0; blkn < blocks; blkn++) {
    JCOEF *block = MCU_data[blkn][0];
    refill(&b);
    int s = decode_symbol(&b, st.dc_tbl[blkn]);
    if (s < 0) goto bad;
    int diff = 0;
    if (s) {
      diff = extend(PEEK(b, s), s);
      DROP(b, s);
    }
    const int ci = st.comp[blkn];
    /* wraps as libjpeg's int does on the malformed files that overflow it */
    st.last_dc[ci] = (int)((unsigned)st.last_dc[ci] + (unsigned)diff);
    block[0] = (JCOEF)st.last_dc[ci];

    if (st.dc_only[blkn]) {
      const skip_entry *skip = st.skip_tbl[blkn];
      const huff_table *ac = st.ac_tbl[blkn];
      int k = 1;
      /*
       * One table step: the entry's symbols at once when they all lie in the
       * block, else one symbol as libjpeg reads it (after a refill of its
       * own: code and value take up to 31 bits).
       */
#define SKIP_STEP                                 \
  {                                               \
    const uint32_t e = skip[PEEK(b, SKIP_BITS)];  \
    if (k + (int)SK_NEED(e) <= 64) {              \
      DROP(b, SK_BITS(e));                        \
      k += SK_NEED(e) + (SK_EOB(e) << 6);         \
    } else {                                      \
      refill(&b);                                 \
      const int sym = decode_symbol(&b, ac);      \
      if (sym < 0) goto bad;                      \
      const int r = sym >> 4, v = sym & 15;       \
      if (v) {                                    \
        DROP(b, v);                               \
        k += r + 1;                               \
      } else {                                    \
        k += r == 15 ? 16 : 64;                   \
      }                                           \
      if (k >= 64) break;                         \
      continue; /* refill: this took up to 31 */  \
    }                                             \
    if (k >= 64) break;                           \
  }
      for (;;) {
        refill(&b);
        SKIP_STEP
        SKIP_STEP
        SKIP_STEP
        SKIP_STEP
      }
#undef SKIP_STEP
    } else {
      const huff_table *ac = st.ac_tbl[blkn];
      for (int k = 1; k < 64; k++) {
        refill(&b);
        const int sym = decode_symbol(&b, ac);
        if (sym < 0) goto bad;
        const int r = sym >> 4, v = sym & 15;
        if (v) {
          k += r;
          /* libjpeg's table has 16 extra entries (63) for a corrupt run past the end */
          block[jpeg_natural_order[k]] = (JCOEF)extend(PEEK(b, v), v);
          DROP(b, v);
        } else {
          if (r != 15) break;
          k += 15;
        }
      }
    }
  }
  /* Zeros read past the segment's end: libjpeg would have warned and decoded them. */
  if (bits_left(&b) < 0) goto bad;
  st.br = b;
  return TRUE;
bad:
  st.failed = 1;
  return TRUE;
}

int dc_scan_install(j_decompress_ptr cinfo) {
  st.failed = 0;
  if (cinfo->progressive_mode || cinfo->arith_code || cinfo->data_precision != 8) return 0;
  if (cinfo->inputctl->has_multiple_scans || cinfo->comps_in_scan != cinfo->num_components) return 0;
  if (cinfo->unread_marker != 0 || cinfo->blocks_in_MCU > D_MAX_BLOCKS_IN_MCU) return 0;
  if (cinfo->output_scanline != 0) return 0;
  int any_dc_only = 0;
  for (int ci = 0; ci < cinfo->comps_in_scan; ci++) {
    const jpeg_component_info *c = cinfo->cur_comp_info[ci];
    if (!c->component_needed) return 0;
    if (c->dc_tbl_no < 0 || c->dc_tbl_no >= MAX_TABLES || !cinfo->dc_huff_tbl_ptrs[c->dc_tbl_no]) return 0;
    if (c->ac_tbl_no < 0 || c->ac_tbl_no >= MAX_TABLES || !cinfo->ac_huff_tbl_ptrs[c->ac_tbl_no]) return 0;
    any_dc_only |= c->DCT_scaled_size == 1;
  }
  if (!any_dc_only) return 0;

  int dc_built[MAX_TABLES] = { 0 }, ac_built[MAX_TABLES] = { 0 }, skip_built[MAX_TABLES] = { 0 };
  for (int blkn = 0; blkn < cinfo->blocks_in_MCU; blkn++) {
    const int ci = cinfo->MCU_membership[blkn];
    const jpeg_component_info *c = cinfo->cur_comp_info[ci];
    const int d = c->dc_tbl_no, a = c->ac_tbl_no;
    if (!dc_built[d]) build_huff_table(&st.dc[d], cinfo->dc_huff_tbl_ptrs[d]);
    if (!ac_built[a]) build_huff_table(&st.ac[a], cinfo->ac_huff_tbl_ptrs[a]);
    dc_built[d] = ac_built[a] = 1;
    st.comp[blkn] = ci;
    st.dc_only[blkn] = c->DCT_scaled_size == 1;
    st.dc_tbl[blkn] = &st.dc[d];
    st.ac_tbl[blkn] = &st.ac[a];
    st.skip_tbl[blkn] = NULL;
    if (st.dc_only[blkn]) {
      if (!st.skip[a]) st.skip[a] = malloc(sizeof(skip_entry) << SKIP_BITS);
      if (!st.skip[a]) return 0;
      if (!skip_built[a]) build_skip_table(st.skip[a], &st.ac[a]);
      skip_built[a] = 1;
      st.skip_tbl[blkn] = st.skip[a];
    }
  }

  /* jpeg_mem_src reads the caller's buffer, which is the whole file and may be changed */
  uint8_t *data = (uint8_t *)cinfo->src->next_input_byte;
  st.file_end = data + cinfo->src->bytes_in_buffer;
  start_segment(data);
  st.restarts_to_go = (int)cinfo->restart_interval;
  st.next_restart = 0;
  memset(st.last_dc, 0, sizeof st.last_dc);
  cinfo->entropy->decode_mcu = decode_mcu;
  return 1;
}
