import { contributions, type Explanation, type ExplainModel } from '@protoatlas/shared';
import sharp from 'sharp';
import type { RgbImage } from '../data/types.ts';
import { renderSourceWithBox } from './render.ts';

/**
 * The paper's "this looks like that" reasoning for one test image as one
 * self-contained HTML page: images inlined as data: URIs, inline CSS, no
 * scripts and no external requests, so it can be mailed or opened offline.
 */

/** Encoded image bytes for the page; width/height (if known) let the browser reserve space. */
export interface PageImage {
  bytes: Uint8Array;
  /** MIME type, default image/webp. */
  type?: string;
  width?: number;
  height?: number;
}

export interface ReasoningRow {
  prototype: number;
  /** Name of the class the prototype belongs to. */
  prototypeClass: string;
  similarity: number;
  weight: number;
  /** Points: similarity x weight. */
  contribution: number;
  /** The input image with the matching part boxed. */
  evidence: PageImage;
  /** The prototype's own picture (its crop from the training image). */
  prototypeImage: PageImage;
}

export interface ReasoningClass {
  className: string;
  probability: number;
  logit: number;
  /** Points summed over every live prototype (should equal the logit). */
  totalPoints: number;
  /** How many prototypes totalPoints sums over. */
  prototypeCount: number;
  rows: ReasoningRow[];
}

export interface ReasoningPageInput {
  fileName: string;
  /** Top predicted classes, most probable first. */
  classes: ReasoningClass[];
}

export interface ReasoningSources {
  fileName: string;
  /** The decoded test image the explanation's boxes refer to. */
  image: RgbImage;
  explanation: Explanation;
  /** For the full per-class sums (and which prototypes are pruned). */
  model: ExplainModel;
  classNames: readonly string[];
  /** Class id of each prototype. */
  prototypeClass: ArrayLike<number>;
  /** Picture of prototype j, e.g. its crop file read from the bundle. */
  prototypeImage: (prototype: number) => PageImage | Promise<PageImage>;
  /** Longer side of the boxed input images (default 160). */
  evidenceMaxSide?: number;
}

/** Fill the page input from an Explanation: renders the boxed input images, sums all points. */
export async function reasoningPageInput(src: ReasoningSources): Promise<ReasoningPageInput> {
  const { explanation, model } = src;
  const live = Array.from({ length: explanation.similarities.length }, (_, j) => !model.pruned?.[j]).filter(
    Boolean,
  ).length;
  // A prototype that is evidence for several classes has one box: render it once.
  const evidence = new Map<number, Promise<PageImage>>();
  const pictures = new Map<number, Promise<PageImage>>();
  const classes = explanation.predictions.map(
    async (p): Promise<ReasoningClass> => ({
      className: className(src.classNames, p.classId),
      probability: p.probability,
      logit: p.logit,
      totalPoints: contributions(explanation.similarities, model, p.classId).reduce((a, b) => a + b, 0),
      prototypeCount: live,
      rows: await Promise.all(
        p.evidence.map(async (e): Promise<ReasoningRow> => {
          if (!evidence.has(e.prototype)) {
            evidence.set(
              e.prototype,
              renderSourceWithBox(src.image, e.box, { maxSide: src.evidenceMaxSide ?? 160 }).then(withSize),
            );
          }
          if (!pictures.has(e.prototype)) pictures.set(e.prototype, Promise.resolve(src.prototypeImage(e.prototype)));
          return {
            prototype: e.prototype,
            prototypeClass: className(src.classNames, src.prototypeClass[e.prototype]),
            similarity: e.similarity,
            weight: e.weight,
            contribution: e.contribution,
            evidence: await evidence.get(e.prototype)!,
            prototypeImage: await pictures.get(e.prototype)!,
          };
        }),
      ),
    }),
  );
  return { fileName: src.fileName, classes: await Promise.all(classes) };
}

function className(names: readonly string[], id: number): string {
  return names[id] ?? `class ${id}`;
}

async function withSize(bytes: Uint8Array): Promise<PageImage> {
  const meta = await sharp(bytes).metadata();
  return { bytes, type: 'image/webp', width: meta.width, height: meta.height };
}

// ---------------------------------------------------------------- HTML

/** Escape text for HTML element content and double- or single-quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Fixed decimals with a true minus sign (U+2212), which reads better in tables than a hyphen. */
export function formatNumber(v: number, digits = 3): string {
  if (!Number.isFinite(v)) return String(v);
  const s = Math.abs(v).toFixed(digits);
  return v < 0 && Number(s) !== 0 ? `\u2212${s}` : s;
}

export function formatPercent(p: number): string {
  if (p > 0 && p < 0.001) return '<0.1%';
  return `${(p * 100).toFixed(1)}%`;
}

function dataUri(img: PageImage): string {
  const type = img.type ?? 'image/webp';
  // The type lands inside an attribute: allow only a plain image MIME type.
  if (!/^image\/[a-z0-9.+-]+$/.test(type)) throw new Error(`reasoning page: unsupported image type "${type}"`);
  return `data:${type};base64,${Buffer.from(img.bytes.buffer, img.bytes.byteOffset, img.bytes.byteLength).toString('base64')}`;
}

function imgTag(img: PageImage, alt: string): string {
  const size = img.width && img.height ? ` width="${img.width}" height="${img.height}"` : '';
  return `<img src="${dataUri(img)}" alt="${escapeHtml(alt)}"${size}>`;
}

/** Numbers agree if they differ by rounding only (float32 maps vs float64 sums). */
function agrees(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-4 * Math.max(1, Math.abs(a), Math.abs(b));
}

function rowHtml(r: ReasoningRow, fileName: string): string {
  const cls = escapeHtml(r.prototypeClass);
  return `<tr>
<td class="pic">${imgTag(r.evidence, `${fileName}, with the part that matches prototype ${r.prototype} boxed in yellow`)}</td>
<td class="looks" aria-hidden="true">looks like</td>
<td class="pic">${imgTag(r.prototypeImage, `Prototype ${r.prototype}, a training image patch of class ${r.prototypeClass}`)}<span class="proto">Prototype ${r.prototype}<br><span class="proto-class">${cls}</span></span></td>
<td class="num" data-label="Similarity">${formatNumber(r.similarity)}</td>
<td class="num" data-label="Weight">${formatNumber(r.weight)}</td>
<td class="num points" data-label="Points">${formatNumber(r.contribution)}</td>
</tr>`;
}

function classHtml(c: ReasoningClass, rank: number, fileName: string): string {
  const name = escapeHtml(c.className);
  const id = `class-${rank}`;
  const shown = c.rows.reduce((a, r) => a + r.contribution, 0);
  const others = c.prototypeCount - c.rows.length;
  const equals = agrees(c.totalPoints, c.logit) ? '=' : '\u2260';
  return `<section class="class" aria-labelledby="${id}">
<h2 id="${id}"><span class="rank">${rank}.</span> ${name} <span class="prob">${escapeHtml(formatPercent(c.probability))}</span></h2>
<div class="wrap"><table>
<caption>Why ${name}: each part of the image looks like a prototype, which adds similarity × weight points.</caption>
<thead><tr><th scope="col">This part of the image</th><th scope="col"><span class="sr">relation</span></th><th scope="col">looks like that prototype</th><th scope="col" class="num">Similarity</th><th scope="col" class="num">Weight</th><th scope="col" class="num">Points</th></tr></thead>
<tbody>
${c.rows.map((r) => rowHtml(r, fileName)).join('\n')}
</tbody>
<tfoot>
<tr><th scope="row" colspan="5">Points from the ${c.rows.length} prototype${c.rows.length === 1 ? '' : 's'} shown</th><td class="num">${formatNumber(shown)}</td></tr>
<tr><th scope="row" colspan="5">Points from the other ${others} prototype${others === 1 ? '' : 's'}</th><td class="num">${formatNumber(c.totalPoints - shown)}</td></tr>
<tr class="total"><th scope="row" colspan="5">Total of all ${c.prototypeCount} prototypes ${equals} logit ${formatNumber(c.logit)}</th><td class="num">${formatNumber(c.totalPoints)}</td></tr>
</tfoot>
</table></div>
</section>`;
}

const CSS = `
:root{color-scheme:light dark;--bg:#fbfaf7;--fg:#1d1d1f;--muted:#5f6368;--line:#e2e0da;--card:#fff;--accent:#8a5a00;--box:#ffdd00}
@media (prefers-color-scheme:dark){:root{--bg:#151517;--fg:#ececec;--muted:#a4a7ad;--line:#34343a;--card:#1f1f23;--accent:#ffcc4d}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:56rem;margin:0 auto;padding:1.5rem 1rem 3rem}
h1{font-size:1.5rem;line-height:1.25;margin:0 0 .75rem}
h1 .file{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85em;overflow-wrap:anywhere}
h2{font-size:1.2rem;margin:2rem 0 .5rem;display:flex;gap:.5rem;align-items:baseline;flex-wrap:wrap}
.rank{color:var(--muted)}
.prob{margin-left:auto;font-variant-numeric:tabular-nums;color:var(--accent);font-weight:600}
.top{list-style:none;padding:0;margin:0 0 1rem;display:flex;flex-wrap:wrap;gap:.5rem}
.top a{display:inline-block;padding:.25rem .75rem;border:1px solid var(--line);border-radius:999px;background:var(--card);color:inherit;text-decoration:none}
.top a:focus-visible,.top a:hover{border-color:var(--accent)}
.note{color:var(--muted);margin:0}
.wrap{overflow-x:auto;background:var(--card);border:1px solid var(--line);border-radius:.75rem}
table{border-collapse:collapse;width:100%}
caption{caption-side:top;text-align:left;padding:.75rem 1rem 0;color:var(--muted);font-size:.9rem}
th,td{padding:.6rem .75rem;text-align:left;vertical-align:middle}
thead th{font-size:.8rem;font-weight:600;color:var(--muted);border-bottom:1px solid var(--line)}
tbody tr+tr td{border-top:1px solid var(--line)}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.points{font-weight:600}
.pic img{display:block;width:100%;max-width:140px;height:auto;aspect-ratio:1;object-fit:contain;border-radius:.4rem;background:var(--line)}
.looks{color:var(--muted);font-style:italic;white-space:nowrap;text-align:center}
.proto{display:block;font-size:.8rem;color:var(--muted);margin-top:.25rem}
.proto-class{color:var(--fg)}
tfoot th{font-weight:400;text-align:right;color:var(--muted)}
tfoot tr:first-child>*{border-top:2px solid var(--line)}
tfoot .total>*{font-weight:700;color:var(--fg)}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}
@media (max-width:560px){
main{padding:1rem .75rem 2rem}
thead{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%)}
tbody tr{display:grid;grid-template-columns:1fr auto 1fr;gap:.25rem .5rem;padding:.75rem;align-items:center}
tbody tr+tr{border-top:1px solid var(--line)}
tbody td{display:block;padding:0;border:0!important}
tbody td.num{text-align:left}
tbody td.num::before{content:attr(data-label);display:block;font-size:.75rem;font-weight:400;color:var(--muted)}
tfoot tr{display:flex;justify-content:space-between;gap:1rem;padding:0 .75rem}
tfoot th,tfoot td{padding:.4rem 0}
}`;

/** The whole page as one HTML string. */
export function renderReasoningPage(input: ReasoningPageInput): string {
  const file = escapeHtml(input.fileName);
  const top = input.classes
    .map(
      (c, i) =>
        `<li><a href="#class-${i + 1}">${escapeHtml(c.className)} <strong>${escapeHtml(formatPercent(c.probability))}</strong></a></li>`,
    )
    .join('');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>This looks like that: ${file}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<h1>Why the model sees <span class="file">${file}</span> as it does</h1>
<ul class="top" aria-label="Top predicted classes">${top}</ul>
<p class="note">For each class, the parts of this image that look most like its prototypes. A class's score (logit) is the sum of similarity × weight over all prototypes.</p>
${input.classes.map((c, i) => classHtml(c, i + 1, input.fileName)).join('\n')}
</main>
</body>
</html>
`;
}
