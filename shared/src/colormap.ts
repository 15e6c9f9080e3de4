/**
 * A perceptually ordered colour map (dark purple -> red -> yellow, like
 * matplotlib's "inferno"), as sRGB anchors interpolated linearly. Anchors are
 * sampled by eye from the published map; exactness is not the point, a
 * monotonic lightness ramp is.
 */
const ANCHORS: [number, number, number][] = [
  [0, 0, 4],
  [31, 12, 72],
  [85, 15, 109],
  [136, 34, 106],
  [186, 54, 85],
  [227, 89, 51],
  [249, 140, 10],
  [249, 201, 50],
  [252, 255, 164],
];

/** RGB bytes for t in [0, 1]. */
export function colormap(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (ANCHORS.length - 1);
  const i = Math.min(ANCHORS.length - 2, Math.floor(x));
  const f = x - i;
  const a = ANCHORS[i];
  const b = ANCHORS[i + 1];
  return [
    Math.round(a[0] + (b[0] - a[0]) * f),
    Math.round(a[1] + (b[1] - a[1]) * f),
    Math.round(a[2] + (b[2] - a[2]) * f),
  ];
}

/** Map a float array to packed RGB, normalised to its own min..max. */
export function colorize(values: ArrayLike<number>): Uint8Array {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    lo = Math.min(lo, values[i]);
    hi = Math.max(hi, values[i]);
  }
  const span = hi > lo ? hi - lo : 1;
  const out = new Uint8Array(values.length * 3);
  for (let i = 0; i < values.length; i++) out.set(colormap((values[i] - lo) / span), i * 3);
  return out;
}
