/**
 * dst[c·rows + r] = src[srcOff + r·cols + c]: a [rows, cols] → [cols, rows]
 * transpose in 16×16 tiles, so reads and writes both stay within a few cache
 * lines (a plain double loop thrashes once cols reaches the hundreds).
 */
const TILE = 16;

export function transposeInto(src: Float32Array, srcOff: number, rows: number, cols: number, dst: Float32Array): void {
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = Math.min(rows, r0 + TILE);
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = Math.min(cols, c0 + TILE);
      for (let c = c0; c < c1; c++) {
        const d = c * rows;
        for (let r = r0; r < r1; r++) dst[d + r] = src[srcOff + r * cols + c];
      }
    }
  }
}
