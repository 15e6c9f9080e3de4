/** An RGB colour, 0-255 per channel. */
export type Rgb = readonly [number, number, number];
export type Point = readonly [number, number];

/**
 * A tiny RGB rasterizer for the synthetic dataset: filled shapes tested at pixel
 * centres, no anti-aliasing (crisp edges are fine at 64 px and keep it fast).
 */
export class Canvas {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;

  constructor(width: number, height: number) {
    this.width = width;
    this.height = height;
    this.data = new Uint8Array(width * height * 3);
  }

  setPixel(x: number, y: number, c: Rgb): void {
    const o = (y * this.width + x) * 3;
    this.data[o] = c[0];
    this.data[o + 1] = c[1];
    this.data[o + 2] = c[2];
  }

  /** Ellipse with radii rx, ry rotated by `angle` radians (clockwise, y down). */
  fillEllipse(cx: number, cy: number, rx: number, ry: number, angle: number, c: Rgb): void {
    const cos = Math.cos(angle);
    const sin = Math.sin(angle);
    const ex = Math.hypot(rx * cos, ry * sin);
    const ey = Math.hypot(rx * sin, ry * cos);
    const [x0, x1, y0, y1] = this.clip(cx - ex, cx + ex, cy - ey, cy + ey);
    const irx2 = 1 / (rx * rx);
    const iry2 = 1 / (ry * ry);
    for (let y = y0; y <= y1; y++) {
      const dy = y + 0.5 - cy;
      for (let x = x0; x <= x1; x++) {
        const dx = x + 0.5 - cx;
        const u = dx * cos + dy * sin;
        const v = -dx * sin + dy * cos;
        if (u * u * irx2 + v * v * iry2 <= 1) this.setPixel(x, y, c);
      }
    }
  }

  fillCircle(cx: number, cy: number, r: number, c: Rgb): void {
    this.fillEllipse(cx, cy, r, r, 0, c);
  }

  /** Any simple polygon (even-odd rule). */
  fillPolygon(points: readonly Point[], c: Rgb): void {
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    const [x0, x1, y0, y1] = this.clip(Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys));
    const n = points.length;
    for (let y = y0; y <= y1; y++) {
      const py = y + 0.5;
      for (let x = x0; x <= x1; x++) {
        const px = x + 0.5;
        let inside = false;
        for (let i = 0, j = n - 1; i < n; j = i++) {
          const [xi, yi] = points[i];
          const [xj, yj] = points[j];
          if (yi > py !== yj > py && px < ((xj - xi) * (py - yi)) / (yj - yi) + xi) inside = !inside;
        }
        if (inside) this.setPixel(x, y, c);
      }
    }
  }

  /** Integer pixel range covering [xa, xb] x [ya, yb], clipped to the canvas. */
  private clip(xa: number, xb: number, ya: number, yb: number): [number, number, number, number] {
    return [
      Math.max(0, Math.floor(xa)),
      Math.min(this.width - 1, Math.ceil(xb)),
      Math.max(0, Math.floor(ya)),
      Math.min(this.height - 1, Math.ceil(yb)),
    ];
  }
}
