import type { Rng } from '../core/rng.ts';
import type { Canvas, Point, Rgb } from './raster.ts';
import type { PartValues } from './synthetic-design.ts';
import type { BoxedPartName } from './synthetic-manifest.ts';

export type Box = [number, number, number, number];

/** Saturated colours of the discriminative parts: far apart so each is unmistakable. */
const PART_COLOUR: Record<string, Rgb> = {
  red: [220, 30, 35],
  yellow: [250, 215, 25],
  blue: [35, 90, 235],
  black: [25, 25, 25],
  white: [250, 250, 250],
};

/*
 * The bird in canonical coordinates: facing right, y down, about 60 x 34 units,
 * one unit = one pixel at size 64 before pose scaling. Numbers chosen by eye so that
 * at size 64 the shortest beak is >= 6 px and the wing bar ~3 px thick.
 */
const BODY = { c: [-2, 2] as Point, rx: 13, ry: 8.5, angle: -0.15 };
const WING = { c: [-4, 0.5] as Point, rx: 9, ry: 5, angle: -0.12 };
const WINGBAR: Point[] = [
  [-11, -1.5],
  [3, -3],
  [3.4, 1],
  [-10.6, 2.5],
];
const HEAD = { c: [10, -6] as Point, r: 6.5 };
const EYE = { c: [12, -7.5] as Point, ring: 2.9, pupil: 1.3 };
const BEAK: Record<string, Point[]> = {
  cone: [
    [15, -9.5],
    [25.5, -6],
    [15, -2.5],
  ],
  thin: [
    [15, -7.6],
    [31, -6],
    [15, -4.4],
  ],
  hooked: [
    [15, -9.5],
    [22, -9],
    [26, -7],
    [27, -3],
    [25, -4.6],
    [22, -4.2],
    [15, -3],
  ],
};
const CREST: Point[] = [
  [4.5, -10],
  [4.5, -18.5],
  [8, -12.5],
  [10.5, -20.5],
  [12, -12.5],
  [15.5, -16.5],
  [15, -9.5],
];
const TAIL: Record<string, Point[]> = {
  fan: [
    [-11, 1],
    [-23, -5],
    [-27, 0.5],
    [-27.5, 5.5],
    [-24, 11],
    [-11, 6],
  ],
  forked: [
    [-11, 1],
    [-28, -4],
    [-21, 3.5],
    [-28, 11],
    [-11, 6],
  ],
  pointed: [
    [-11, 0.5],
    [-30, 4.5],
    [-11, 7],
  ],
};
const LEGS: Point[][] = [
  [
    [-4, 8],
    [-2.6, 8],
    [-2.6, 14],
    [-4, 14],
  ],
  [
    [1, 8],
    [2.4, 8],
    [2.4, 14],
    [1, 14],
  ],
];
/** Canonical point drawn at the pose centre (middle of the bird's extent). */
const ORIGIN: Point = [0.5, -3];

export interface Pose {
  cx: number;
  cy: number;
  scale: number;
  angle: number;
  mirror: boolean;
}

/** Random pose: position jitter, scale +-15%, small tilt, mirrored half the time. */
export function randomPose(rng: Rng, size: number): Pose {
  const u = size / 64;
  const jitter = () => (rng.next() * 2 - 1) * 3 * u;
  return {
    cx: size / 2 + jitter(),
    cy: size / 2 + jitter(),
    scale: u * 0.85 * (0.85 + 0.3 * rng.next()),
    angle: (rng.next() * 2 - 1) * 0.17,
    mirror: rng.next() < 0.5,
  };
}

/**
 * Draw background and bird; returns each part's pixel box (x, y, w, h) clamped to the
 * canvas (null for an absent crest). Body, head, background colours are random.
 */
export function drawBird(canvas: Canvas, rng: Rng, values: PartValues, pose: Pose): Record<BoxedPartName, Box | null> {
  const size = canvas.width;
  const cos = Math.cos(pose.angle);
  const sin = Math.sin(pose.angle);
  const t = ([x, y]: Point): Point => {
    const mx = (pose.mirror ? -1 : 1) * (x - ORIGIN[0]);
    const my = y - ORIGIN[1];
    return [pose.cx + pose.scale * (cos * mx - sin * my), pose.cy + pose.scale * (sin * mx + cos * my)];
  };
  const tAngle = (a: number) => (pose.mirror ? -a : a) + pose.angle;
  const poly = (pts: Point[], c: Rgb): Point[] => {
    const q = pts.map(t);
    canvas.fillPolygon(q, c);
    return q;
  };
  const ellipse = (e: { c: Point; rx: number; ry: number; angle: number }, c: Rgb): Box => {
    const [cx, cy] = t(e.c);
    const rx = e.rx * pose.scale;
    const ry = e.ry * pose.scale;
    const a = tAngle(e.angle);
    canvas.fillEllipse(cx, cy, rx, ry, a, c);
    const ex = Math.hypot(rx * Math.cos(a), ry * Math.sin(a));
    const ey = Math.hypot(rx * Math.sin(a), ry * Math.cos(a));
    return clampBox(cx - ex, cy - ey, cx + ex, cy + ey, size);
  };
  const circle = (c: Point, r: number, colour: Rgb): Box => ellipse({ c, rx: r, ry: r, angle: 0 }, colour);
  const box = (pts: Point[]): Box => {
    const xs = pts.map((p) => p[0]);
    const ys = pts.map((p) => p[1]);
    return clampBox(Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys), size);
  };

  paintBackground(canvas, rng);
  // Perch under the feet, tilted at random: clutter that every class shares.
  const foot = t([0, 14]);
  const tilt = (rng.next() * 2 - 1) * 0.15 * size;
  const th = 1.6 * pose.scale;
  canvas.fillPolygon(
    [
      [0, foot[1] - tilt - th],
      [size, foot[1] + tilt - th],
      [size, foot[1] + tilt + th],
      [0, foot[1] - tilt + th],
    ],
    hsv(0.07 + 0.05 * rng.next(), 0.4 + 0.2 * rng.next(), 0.3 + 0.2 * rng.next()),
  );

  const body = muted(rng);
  const [beakColour, beakShape] = values.beak.split('-');
  const tailBox = box(poly(TAIL[values.tail], shade(body, 0.75)));
  const legColour = hsv(rng.next(), 0.2, 0.25);
  for (const leg of LEGS) poly(leg, legColour);
  const bodyBox = ellipse(BODY, body);
  ellipse(WING, shade(body, 0.8));
  const wingbarBox = box(poly(WINGBAR, PART_COLOUR[values.wingbar]));
  const crestBox = values.crest === 'none' ? null : box(poly(CREST, PART_COLOUR[values.crest]));
  const headBox = circle(HEAD.c, HEAD.r, muted(rng));
  const eyeringBox = circle(EYE.c, EYE.ring, PART_COLOUR[values.eyering]);
  circle(EYE.c, EYE.pupil, [10, 10, 10]);
  const beakBox = box(poly(BEAK[beakShape], PART_COLOUR[beakColour]));
  addNoise(canvas, rng, 12);
  return {
    beak: beakBox,
    crest: crestBox,
    wingbar: wingbarBox,
    tail: tailBox,
    eyering: eyeringBox,
    head: headBox,
    body: bodyBox,
  };
}

/** Light random tint with a vertical gradient and a few faint leaf-like blobs. */
function paintBackground(canvas: Canvas, rng: Rng): void {
  const { width, height, data } = canvas;
  const base = hsv(rng.next(), 0.05 + 0.25 * rng.next(), 0.72 + 0.23 * rng.next());
  const slope = (rng.next() * 2 - 1) * 0.25;
  for (let y = 0; y < height; y++) {
    const f = 1 + slope * (y / height - 0.5);
    const r = Math.min(255, base[0] * f);
    const g = Math.min(255, base[1] * f);
    const b = Math.min(255, base[2] * f);
    for (let x = 0, o = y * width * 3; x < width; x++, o += 3) {
      data[o] = r;
      data[o + 1] = g;
      data[o + 2] = b;
    }
  }
  const blobs = rng.int(4);
  for (let i = 0; i < blobs; i++) {
    const r = (0.05 + 0.1 * rng.next()) * width;
    canvas.fillEllipse(
      rng.next() * width,
      rng.next() * height,
      r,
      r * (0.4 + 0.5 * rng.next()),
      rng.next() * Math.PI,
      hsv(0.15 + 0.3 * rng.next(), 0.1 + 0.25 * rng.next(), 0.5 + 0.35 * rng.next()),
    );
  }
}

function addNoise(canvas: Canvas, rng: Rng, amplitude: number): void {
  const d = canvas.data;
  for (let i = 0; i < d.length; i++) {
    const v = d[i] + (rng.next() * 2 - 1) * amplitude;
    d[i] = v < 0 ? 0 : Math.min(v, 255);
  }
}

/** A dull colour for body and head: any hue, low saturation, mid value, so parts stand out. */
function muted(rng: Rng): Rgb {
  return hsv(rng.next(), 0.15 + 0.3 * rng.next(), 0.35 + 0.3 * rng.next());
}

function shade(c: Rgb, f: number): Rgb {
  return [c[0] * f, c[1] * f, c[2] * f];
}

function hsv(h: number, s: number, v: number): Rgb {
  const i = Math.floor(h * 6);
  const f = h * 6 - i;
  const p = v * (1 - s);
  const q = v * (1 - f * s);
  const u = v * (1 - (1 - f) * s);
  const [r, g, b] = [
    [v, u, p],
    [q, v, p],
    [p, v, u],
    [p, q, v],
    [u, p, v],
    [v, p, q],
  ][((i % 6) + 6) % 6];
  return [Math.round(r * 255), Math.round(g * 255), Math.round(b * 255)];
}

/** Integer pixel box covering [x0, x1] x [y0, y1], clamped to the image. */
function clampBox(x0: number, y0: number, x1: number, y1: number, size: number): Box {
  const l = Math.max(0, Math.min(size, Math.floor(x0)));
  const tp = Math.max(0, Math.min(size, Math.floor(y0)));
  const r = Math.max(0, Math.min(size, Math.ceil(x1)));
  const b = Math.max(0, Math.min(size, Math.ceil(y1)));
  return [l, tp, r - l, b - tp];
}
