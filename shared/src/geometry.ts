/** An axis-aligned box in pixels: left, top, width, height (integers for images). */
export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Cubic convolution kernel (a = -0.75, as OpenCV's INTER_CUBIC that the paper's code uses). */
function cubicWeights(t: number, out: Float64Array): void {
  const a = -0.75;
  const w = (x: number) => {
    const ax = Math.abs(x);
    if (ax <= 1) return ((a + 2) * ax - (a + 3)) * ax * ax + 1;
    if (ax < 2) return ((a * ax - 5 * a) * ax + 8 * a) * ax - 4 * a;
    return 0;
  };
  out[0] = w(t + 1);
  out[1] = w(t);
  out[2] = w(1 - t);
  out[3] = w(2 - t);
}

/** Per output coordinate: the four source indices (clamped) and their weights. */
function axisTaps(inSize: number, outSize: number): { idx: Int32Array; wts: Float64Array } {
  const idx = new Int32Array(outSize * 4);
  const wts = new Float64Array(outSize * 4);
  const scale = inSize / outSize;
  const tmp = new Float64Array(4);
  for (let o = 0; o < outSize; o++) {
    // Pixel-centre alignment (align_corners = false).
    const src = (o + 0.5) * scale - 0.5;
    const i0 = Math.floor(src);
    cubicWeights(src - i0, tmp);
    for (let k = 0; k < 4; k++) {
      idx[o * 4 + k] = Math.min(inSize - 1, Math.max(0, i0 - 1 + k));
      wts[o * 4 + k] = tmp[k];
    }
  }
  return { idx, wts };
}

/**
 * Bicubic upsampling of a row-major map (inH x inW) to outH x outW, separable,
 * pixel-centre aligned with edge clamping. Used for activation heatmaps.
 */
export function upsampleBicubic(
  map: ArrayLike<number>,
  inH: number,
  inW: number,
  outH: number,
  outW: number,
): Float32Array {
  if (map.length !== inH * inW)
    throw new Error(`upsampleBicubic: map has ${map.length} values, expected ${inH}x${inW}`);
  if (outH < 1 || outW < 1) throw new Error(`upsampleBicubic: output size ${outW}x${outH} must be positive`);
  const cols = axisTaps(inW, outW);
  const rows = axisTaps(inH, outH);
  // Horizontal pass: inH x outW. Each value adds its four taps in order, starting from 0.
  const tmp = new Float64Array(inH * outW);
  const { idx: ci, wts: cw } = cols;
  for (let y = 0; y < inH; y++) {
    const row = y * inW;
    const o = y * outW;
    for (let x = 0; x < outW; x++) {
      const t = x * 4;
      let s = 0;
      s += cw[t] * map[row + ci[t]];
      s += cw[t + 1] * map[row + ci[t + 1]];
      s += cw[t + 2] * map[row + ci[t + 2]];
      s += cw[t + 3] * map[row + ci[t + 3]];
      tmp[o + x] = s;
    }
  }
  // Vertical pass: an output row's four source rows and weights are the same for every column.
  const out = new Float32Array(outH * outW);
  for (let y = 0; y < outH; y++) {
    const t = y * 4;
    const [w0, w1, w2, w3] = [rows.wts[t], rows.wts[t + 1], rows.wts[t + 2], rows.wts[t + 3]];
    const r0 = rows.idx[t] * outW;
    const r1 = rows.idx[t + 1] * outW;
    const r2 = rows.idx[t + 2] * outW;
    const r3 = rows.idx[t + 3] * outW;
    const o = y * outW;
    for (let x = 0; x < outW; x++) {
      let s = 0;
      s += w0 * tmp[r0 + x];
      s += w1 * tmp[r1 + x];
      s += w2 * tmp[r2 + x];
      s += w3 * tmp[r3 + x];
      out[o + x] = s;
    }
  }
  return out;
}

/** The value at a percentile (0-100) of an array, with numpy's default linear interpolation. */
export function percentile(values: ArrayLike<number>, p: number): number {
  const n = values.length;
  if (n === 0) throw new Error('percentile of an empty array');
  const a = Float64Array.from(values as ArrayLike<number>);
  const pos = (Math.min(100, Math.max(0, p)) / 100) * (n - 1);
  const lo = Math.floor(pos);
  const vLo = select(a, lo);
  if (lo + 1 >= n || pos === lo) return vLo;
  // After selection everything right of `lo` is >= a[lo]: the next order statistic is their minimum.
  let vHi = Infinity;
  for (let i = lo + 1; i < n; i++) if (a[i] < vHi) vHi = a[i];
  return vLo + (vHi - vLo) * (pos - lo);
}

/** k-th smallest (0-based) by in-place quickselect: linear time, where sorting a 500x375 map took 25 ms. */
function select(a: Float64Array, k: number): number {
  let left = 0;
  let right = a.length - 1;
  while (right > left) {
    // Median of three as pivot keeps sorted or constant inputs linear.
    const mid = (left + right) >> 1;
    const x = a[left];
    const y = a[mid];
    const z = a[right];
    const pivot = x < y ? (y < z ? y : Math.max(x, z)) : x < z ? x : Math.max(y, z);
    let i = left;
    let j = right;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) right = j;
    else if (k >= i) left = i;
    else return a[k];
  }
  return a[k];
}

/**
 * The paper's prototype box: the smallest rectangle covering every pixel whose
 * activation is at or above the given percentile (95 by default) of the map.
 */
export function percentileBox(map: ArrayLike<number>, width: number, height: number, p = 95): Box {
  if (map.length !== width * height)
    throw new Error(`percentileBox: map has ${map.length} values, expected ${width}x${height}`);
  const threshold = percentile(map, p);
  let x0 = width;
  let y0 = height;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < height; y++) {
    const row = y * width;
    // The row's first and last pixel at or above the threshold bound everything between.
    let first = 0;
    while (first < width && !(map[row + first] >= threshold)) first++;
    if (first === width) continue;
    let last = width - 1;
    while (!(map[row + last] >= threshold)) last--;
    if (first < x0) x0 = first;
    if (last > x1) x1 = last;
    if (y < y0) y0 = y;
    y1 = y;
  }
  return { x: x0, y: y0, w: x1 - x0 + 1, h: y1 - y0 + 1 };
}

/** The image region of one feature-grid cell (the patch itself, without its context). */
export function cellBox(row: number, col: number, gridH: number, gridW: number, imageW: number, imageH: number): Box {
  const x = Math.floor((col * imageW) / gridW);
  const y = Math.floor((row * imageH) / gridH);
  const x1 = Math.ceil(((col + 1) * imageW) / gridW);
  const y1 = Math.ceil(((row + 1) * imageH) / gridH);
  return { x, y, w: x1 - x, h: y1 - y };
}

/** Receptive field of a feature-map cell on the network input: size, stride (jump) and the centre of cell 0. */
export interface ReceptiveField {
  size: number;
  stride: number;
  start: number;
}

/** Compose convolution/pooling layers (kernel, stride, padding before) into one receptive field. */
export function composeReceptiveField(layers: { kernel: number; stride: number; padding: number }[]): ReceptiveField {
  let size = 1;
  let stride = 1;
  let start = 0.5;
  for (const l of layers) {
    size += (l.kernel - 1) * stride;
    start += ((l.kernel - 1) / 2 - l.padding) * stride;
    stride *= l.stride;
  }
  return { size, stride, start };
}

/**
 * The receptive field of cell (row, col) mapped to an image of imageW x imageH
 * (the network input is the image resized to inputSize squared), clipped to the image.
 */
export function receptiveFieldBox(
  rf: ReceptiveField,
  row: number,
  col: number,
  inputSize: number,
  imageW: number,
  imageH: number,
): Box {
  const half = rf.size / 2;
  const cx = rf.start + col * rf.stride;
  const cy = rf.start + row * rf.stride;
  const sx = imageW / inputSize;
  const sy = imageH / inputSize;
  const x0 = Math.max(0, Math.floor((cx - half) * sx));
  const y0 = Math.max(0, Math.floor((cy - half) * sy));
  const x1 = Math.min(imageW, Math.ceil((cx + half) * sx));
  const y1 = Math.min(imageH, Math.ceil((cy + half) * sy));
  return { x: x0, y: y0, w: Math.max(1, x1 - x0), h: Math.max(1, y1 - y0) };
}

/** Intersection over union of two boxes. */
export function boxIoU(a: Box, b: Box): number {
  const ix = Math.max(0, Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x));
  const iy = Math.max(0, Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y));
  const inter = ix * iy;
  const union = a.w * a.h + b.w * b.h - inter;
  return union > 0 ? inter / union : 0;
}

/** Share of box `b`'s area that lies inside box `a`. */
export function boxCoverage(a: Box, b: Box): number {
  const ix = Math.max(0, Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x));
  const iy = Math.max(0, Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y));
  return b.w * b.h > 0 ? (ix * iy) / (b.w * b.h) : 0;
}
