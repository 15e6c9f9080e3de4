/**
 * Chart geometry computed at build time, so charts are plain SVG that needs no
 * JavaScript. Pure functions: the .astro components only draw what these return.
 */

export interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

export const fmt = (v: number, digits = 2) => (Number.isFinite(v) ? v.toFixed(digits) : '–');

/** About n "nice" ticks (1, 2, 2.5, 5 x 10^k) covering [min, max]. */
export function niceTicks(min: number, max: number, n = 5): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / Math.max(1, n);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  // From the step at or below min to the step at or above max, so the axis encloses every value.
  const first = Math.floor(min / step + 1e-9);
  const last = Math.ceil(max / step - 1e-9);
  for (let i = first; i <= last; i++) out.push(Number((i * step).toPrecision(12)));
  return out;
}

export interface Series {
  name: string;
  /** One value per x position; null leaves a gap. */
  values: (number | null)[];
}

export interface LineChart {
  frame: Frame;
  lines: { name: string; d: string; points: { x: number; y: number; value: number }[] }[];
  yTicks: { y: number; label: string }[];
  xTicks: { x: number; label: string }[];
  bands: { x: number; w: number; label: string }[];
  /** Horizontal reference lines (e.g. the baseline), in chart coordinates. */
  refs: { y: number; label: string }[];
}

/**
 * Lines over a shared x axis (the i-th value of every series is drawn at the
 * same x), with optional shaded bands (training stages) and reference levels.
 */
export function lineChart(
  series: Series[],
  opts: {
    frame?: Partial<Frame>;
    yMin?: number;
    yMax?: number;
    bands?: { from: number; to: number; label: string }[];
    refs?: { value: number; label: string }[];
    percent?: boolean;
    /** Logarithmic y axis (values must be positive): for losses spanning orders of magnitude. */
    log?: boolean;
  } = {},
): LineChart {
  const frame: Frame = { width: 640, height: 260, left: 48, right: 16, top: 24, bottom: 36, ...opts.frame };
  const n = Math.max(0, ...series.map((s) => s.values.length));
  const log = opts.log === true;
  const usable = (v: number | null): v is number => v !== null && Number.isFinite(v) && (!log || v > 0);
  const all = series.flatMap((s) => s.values.filter(usable));
  for (const r of opts.refs ?? []) all.push(r.value);
  let ticks: number[];
  let lo: number;
  let hi: number;
  if (log) {
    lo = Math.floor(Math.log10(all.length ? Math.min(...all) : 1));
    hi = Math.ceil(Math.log10(all.length ? Math.max(...all) : 10));
    if (hi <= lo) hi = lo + 1;
    ticks = [];
    for (let e = lo; e <= hi; e++)
      for (const m of hi - lo <= 2 ? [1, 2, 5] : [1])
        if (e + Math.log10(m) <= hi) ticks.push(Number((m * 10 ** e).toPrecision(6)));
  } else {
    lo = opts.yMin ?? (all.length ? Math.min(...all) : 0);
    hi = opts.yMax ?? (all.length ? Math.max(...all) : 1);
    if (!(hi > lo)) hi = lo + 1;
    ticks = niceTicks(lo, hi, 4);
    lo = Math.min(lo, ticks[0]);
    hi = Math.max(hi, ticks[ticks.length - 1]);
  }
  const iw = frame.width - frame.left - frame.right;
  const ih = frame.height - frame.top - frame.bottom;
  const xAt = (i: number) => frame.left + (n <= 1 ? iw / 2 : (i / (n - 1)) * iw);
  const yAt = (v: number) => frame.top + ih - (((log ? Math.log10(v) : v) - lo) / (hi - lo)) * ih;
  const r1 = (v: number) => Math.round(v * 10) / 10;
  const lines = series.map((s) => {
    let d = '';
    let pen = false;
    const points: LineChart['lines'][number]['points'] = [];
    s.values.forEach((v, i) => {
      if (!usable(v)) {
        pen = false;
        return;
      }
      const x = r1(xAt(i));
      const y = r1(yAt(v));
      d += `${pen ? 'L' : 'M'}${x} ${y}`;
      pen = true;
      points.push({ x, y, value: v });
    });
    return { name: s.name, d, points };
  });
  const step = n > 1 ? iw / (n - 1) : iw;
  const label = (v: number) => (opts.percent ? `${Math.round(v * 100)}%` : String(v));
  const every = Math.max(1, Math.ceil(n / 10));
  return {
    frame,
    lines,
    yTicks: ticks.map((v) => ({ y: r1(yAt(v)), label: label(v) })),
    xTicks: Array.from({ length: n }, (_, i) => i)
      .filter((i) => i % every === 0 || i === n - 1)
      .map((i) => ({ x: r1(xAt(i)), label: String(i + 1) })),
    bands: (opts.bands ?? []).map((b) => {
      const x0 = Math.max(frame.left, xAt(b.from) - step / 2);
      const x1 = Math.min(frame.width - frame.right, xAt(b.to) + step / 2);
      return { x: r1(x0), w: r1(Math.max(0, x1 - x0)), label: b.label };
    }),
    refs: (opts.refs ?? []).map((r) => ({ y: r1(yAt(r.value)), label: r.label })),
  };
}

/** Runs of equal consecutive labels: training stages as x ranges. */
export function runs(labels: string[]): { from: number; to: number; label: string }[] {
  const out: { from: number; to: number; label: string }[] = [];
  labels.forEach((l, i) => {
    const last = out[out.length - 1];
    if (last && last.label === l) last.to = i;
    else out.push({ from: i, to: i, label: l });
  });
  return out;
}

export interface BarChart {
  frame: Frame;
  /** One path per colour: bars above zero, below zero, and the highlighted bar. */
  positive: string;
  negative: string;
  highlight: string;
  zeroY: number;
  yTicks: { y: number; label: string }[];
  barWidth: number;
}

/**
 * One bar per class, drawn as three SVG paths instead of hundreds of rects
 * (2,000 pages x 200 classes must stay cheap to build and to load).
 */
export function barChart(
  values: ArrayLike<number>,
  highlight: number | null,
  opts: { frame?: Partial<Frame> } = {},
): BarChart {
  const frame: Frame = { width: 640, height: 200, left: 44, right: 8, top: 12, bottom: 12, ...opts.frame };
  const n = values.length;
  let lo = 0;
  let hi = 0;
  for (let i = 0; i < n; i++) {
    lo = Math.min(lo, values[i]);
    hi = Math.max(hi, values[i]);
  }
  if (hi === lo) hi = lo + 1;
  const ticks = niceTicks(lo, hi, 4);
  lo = Math.min(lo, ticks[0]);
  hi = Math.max(hi, ticks[ticks.length - 1]);
  const iw = frame.width - frame.left - frame.right;
  const ih = frame.height - frame.top - frame.bottom;
  const slot = iw / Math.max(1, n);
  // Thin gaps for many classes; few classes get bars no wider than 48 units.
  const barWidth = Math.max(0.5, Math.round(Math.min(48, slot * (n > 60 ? 0.8 : 0.7)) * 100) / 100);
  const yAt = (v: number) => frame.top + ih - ((v - lo) / (hi - lo)) * ih;
  const zeroY = yAt(0);
  const r2 = (v: number) => Math.round(v * 100) / 100;
  let positive = '';
  let negative = '';
  let hl = '';
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v === 0) continue;
    const x = r2(frame.left + i * slot + (slot - barWidth) / 2);
    const y = r2(Math.min(zeroY, yAt(v)));
    const h = r2(Math.max(0.5, Math.abs(yAt(v) - zeroY)));
    const d = `M${x} ${y}h${barWidth}v${h}h${-barWidth}z`;
    if (i === highlight) hl += d;
    else if (v > 0) positive += d;
    else negative += d;
  }
  return {
    frame,
    positive,
    negative,
    highlight: hl,
    zeroY: r2(zeroY),
    yTicks: ticks.map((v) => ({ y: r2(yAt(v)), label: String(v) })),
    barWidth,
  };
}

/** A box inside a width x height image, as percentages for an overlay. */
export function boxPercent(
  box: { x: number; y: number; w: number; h: number },
  width: number,
  height: number,
): { left: string; top: string; width: string; height: string } {
  const p = (v: number, of: number) => `${Math.round((v / of) * 10000) / 100}%`;
  return { left: p(box.x, width), top: p(box.y, height), width: p(box.w, width), height: p(box.h, height) };
}
