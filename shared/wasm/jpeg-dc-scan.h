/*
 * jpeg-dc-scan: an entropy decoder for baseline JPEG scans read at a reduced
 * scale, replacing libjpeg-turbo's Huffman decoder (see jpeg-dc-scan.c).
 */
#ifndef JPEG_DC_SCAN_H
#define JPEG_DC_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "jpeglib.h"

/*
 * Call after jpeg_start_decompress on a decompressor reading from memory
 * (jpeg_mem_src), whose buffer it then changes (see jpeg-dc-scan.c).
 * Takes over entropy decoding when the file is a single-scan Huffman
 * baseline/extended JPEG and some component is output one pixel per block
 * (only its DC coefficient is read). Returns 1 when installed, 0 when libjpeg
 * keeps decoding (nothing changed).
 */
int dc_scan_install(j_decompress_ptr cinfo);

/*
 * 1 when the installed decoder met data it does not handle the way libjpeg
 * would (a bad Huffman code, a missing or unexpected marker, data cut short):
 * the pixels decoded since are not libjpeg's, so decode a fresh copy of the
 * file again without it.
 */
int dc_scan_failed(void);

#endif
