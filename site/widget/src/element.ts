import { LocalClassifier } from './local.ts';
import { JPEG_WASM_FILE } from './photo-pixels.ts';
import { classifyRemote } from './remote.ts';
import { CSS } from './styles.ts';
import type { ClassifyResponse, ClassifyResult, EvidenceItem, Mode, Prediction, Provider } from './types.ts';

type Attrs = Record<string, string | boolean | undefined>;

/** Small DOM builder: no innerHTML, so the widget also works under Trusted Types. */
function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Node | string | null | false)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === 'class') el.className = String(v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== false) el.append(c);
  return el;
}

const pct = (p: number) => `${(p * 100).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1)}%`;
const signed = (v: number) => `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(2)}`;
const intAttr = (v: string | null, dflt: number, max: number) => {
  const n = Number.parseInt(v ?? '', 10);
  return Number.isFinite(n) && n > 0 ? Math.min(n, max) : dflt;
};

/**
 * <protoatlas-classifier api="https://.../classify" bundle="https://.../bundle/">
 *
 * A photo in (file picker, drag and drop, paste, camera on phones), the top
 * species out with their evidence: the box on the photo beside the prototype it
 * looks like, and the points that prototype gave. Remote mode posts to the edge
 * API; local mode runs the bundle's ONNX model with onnxruntime-web, which is
 * fetched only then.
 */
export function defineClassifier(scriptUrl: string): void {
  if (customElements.get('protoatlas-classifier')) return;

  class ProtoAtlasClassifier extends HTMLElement {
    static observedAttributes = ['api', 'bundle', 'mode'];

    #root: ShadowRoot;
    #status!: HTMLParagraphElement;
    #modeLine!: HTMLParagraphElement;
    #switch!: HTMLFieldSetElement;
    #results!: HTMLDivElement;
    #drop!: HTMLDivElement;
    #local: Promise<LocalClassifier> | null = null;
    #localKey = '';
    #chosen: Mode | null = null;
    #busy: AbortController | null = null;
    #last: ClassifyResult | null = null;

    constructor() {
      super();
      this.#root = this.attachShadow({ mode: 'open' });
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      // A constructed sheet, not a <style> element: allowed under a strict style-src CSP.
      this.#root.adoptedStyleSheets = [sheet];
      this.#build();
    }

    /** The result of the last classification (null before one). */
    get result(): ClassifyResult | null {
      return this.#last;
    }

    /** Which mode the next photo will use. */
    get mode(): Mode | null {
      const api = this.getAttribute('api');
      const bundle = this.getAttribute('bundle');
      const want = this.#chosen ?? (this.getAttribute('mode') as Mode | 'auto' | null);
      if (want === 'local' && bundle) return 'local';
      if (want === 'remote' && api) return 'remote';
      return api ? 'remote' : bundle ? 'local' : null;
    }

    attributeChangedCallback(): void {
      if (this.#modeLine) this.#renderMode(null);
    }

    #build(): void {
      const pick = h('input', { type: 'file', accept: 'image/*', 'aria-label': 'Choose a photo' });
      const camera = h('input', {
        type: 'file',
        accept: 'image/*',
        capture: 'environment',
        'aria-label': 'Take a photo',
      });
      for (const input of [pick, camera]) {
        input.addEventListener('change', () => {
          const f = input.files?.[0];
          if (f) void this.classify(f);
          input.value = '';
        });
      }
      const cameraBtn = h('label', { class: 'btn secondary', part: 'button' }, camera, 'Take a photo');
      // Only phones and tablets get a camera button; desktops' file pickers offer the camera anyway where there is one.
      cameraBtn.hidden = !(matchMedia('(pointer: coarse)').matches && navigator.maxTouchPoints > 0);
      this.#drop = h(
        'div',
        { class: 'drop', part: 'dropzone' },
        h('p', {}, 'Drop a bird photo here, paste one, or'),
        h('div', { class: 'buttons' }, h('label', { class: 'btn', part: 'button' }, pick, 'Choose a photo'), cameraBtn),
      );
      const d = this.#drop;
      d.addEventListener('dragover', (e) => {
        e.preventDefault();
        d.classList.add('over');
      });
      d.addEventListener('dragleave', () => d.classList.remove('over'));
      d.addEventListener('drop', (e) => {
        e.preventDefault();
        d.classList.remove('over');
        const f = [...(e.dataTransfer?.files ?? [])].find((x) => x.type.startsWith('image/'));
        if (f) void this.classify(f);
        else this.#error('that was not an image');
      });
      this.addEventListener('paste', (e) => {
        const f = [...(e.clipboardData?.files ?? [])].find((x) => x.type.startsWith('image/'));
        if (f) void this.classify(f);
      });
      this.#switch = h('fieldset', { part: 'mode-switch' }, h('legend', {}, 'Where to classify'));
      for (const [value, text] of [
        ['remote', 'Edge API'],
        ['local', 'In this browser'],
      ] as const) {
        const r = h('input', { type: 'radio', name: 'mode', value });
        r.addEventListener('change', () => {
          this.#chosen = value;
          this.#renderMode(null);
        });
        this.#switch.append(h('label', {}, r, text));
      }
      this.#modeLine = h('p', { class: 'mode', part: 'mode' });
      this.#status = h('p', { class: 'status', part: 'status', role: 'status', 'aria-live': 'polite' });
      this.#results = h('div', { class: 'results', part: 'results' });
      this.#root.append(
        h('div', { class: 'top' }, this.#modeLine, this.#switch),
        this.#drop,
        this.#status,
        this.#results,
      );
      this.#renderMode(null);
    }

    #renderMode(provider: Provider | null): void {
      const mode = this.mode;
      const both = !!this.getAttribute('api') && !!this.getAttribute('bundle');
      this.#switch.hidden = !both;
      for (const r of this.#switch.querySelectorAll('input')) r.checked = r.value === mode;
      this.#modeLine.replaceChildren(
        'Mode: ',
        h('b', {}, mode === 'remote' ? 'remote' : mode === 'local' ? 'local' : 'none'),
        mode === 'remote'
          ? ' · edge API'
          : mode === 'local'
            ? ` · onnxruntime-web ${provider ? (provider === 'webgpu' ? 'WebGPU' : 'WebAssembly') : '(WebGPU where available, else WebAssembly)'}`
            : ' · set api or bundle',
      );
      this.#modeLine.dataset.mode = mode ?? '';
      this.#modeLine.dataset.provider = provider ?? '';
    }

    #error(message: string): void {
      this.#status.textContent = message;
      this.#status.classList.add('error');
      this.#status.setAttribute('role', 'alert');
      this.dispatchEvent(new CustomEvent('protoatlas-error', { detail: { message }, bubbles: true, composed: true }));
    }

    #say(message: string): void {
      this.#status.textContent = message;
      this.#status.classList.remove('error');
      this.#status.setAttribute('role', 'status');
    }

    #ortBase(): string {
      return this.getAttribute('ort') ?? new URL('ort/', scriptUrl).href;
    }

    #localClassifier(): Promise<LocalClassifier> {
      const bundle = this.getAttribute('bundle')!;
      const provider =
        this.getAttribute('provider') === 'wasm'
          ? 'wasm'
          : this.getAttribute('provider') === 'webgpu'
            ? 'webgpu'
            : 'auto';
      // Default: the deployed model, as the edge runs it (int8 when the bundle has one).
      const precision =
        this.getAttribute('precision') === 'fp32'
          ? 'fp32'
          : this.getAttribute('precision') === 'int8'
            ? 'int8'
            : 'auto';
      const key = [bundle, provider, precision, this.#ortBase()].join('|');
      if (!this.#local || key !== this.#localKey) {
        this.#localKey = key;
        this.#local = LocalClassifier.create(bundle, this.#ortBase(), { provider, precision });
        this.#local.catch(() => (this.#local = null)); // let the next photo retry
      }
      return this.#local;
    }

    /** Classify a photo (also what the picker, drop and paste call). */
    async classify(photo: Blob): Promise<ClassifyResult | null> {
      this.#busy?.abort();
      const busy = (this.#busy = new AbortController());
      const mode = this.mode;
      if (!mode) {
        this.#error('this widget needs an api="…/classify" or a bundle="…/bundle/" attribute');
        return null;
      }
      const opts = {
        top: intAttr(this.getAttribute('top'), 3, 20),
        evidence: intAttr(this.getAttribute('evidence'), 3, 10),
      };
      this.#results.replaceChildren();
      this.setAttribute('aria-busy', 'true');
      try {
        let bitmap: ImageBitmap;
        try {
          bitmap = await createImageBitmap(photo);
        } catch {
          throw new Error('this file could not be read as an image');
        }
        let res: Awaited<ReturnType<typeof classifyRemote>>;
        let provider: Provider | null = null;
        if (mode === 'remote') {
          this.#say('Sending the photo to the edge API…');
          res = await classifyRemote(this.getAttribute('api')!, photo, opts, busy.signal);
        } else {
          this.#say('Loading the model in your browser…');
          const local = await this.#localClassifier();
          provider = local.provider;
          this.#renderMode(provider);
          this.#say('Looking for prototypes in your photo…');
          res = await local.classify(photo, bitmap, opts, new URL(JPEG_WASM_FILE, scriptUrl).href);
        }
        if (busy.signal.aborted) return null;
        const result: ClassifyResult = {
          ...fitBoxes(res, bitmap),
          mode,
          provider,
          image: { width: bitmap.width, height: bitmap.height },
        };
        this.#last = result;
        this.#render(result, bitmap);
        const top = result.predictions[0];
        this.#say(top ? `Most likely ${top.label} (${pct(top.probability)}).` : 'No prediction.');
        this.dispatchEvent(new CustomEvent('protoatlas-result', { detail: result, bubbles: true, composed: true }));
        return result;
      } catch (e) {
        if (busy.signal.aborted) return null;
        this.#error(`Could not classify: ${(e as Error).message}`);
        return null;
      } finally {
        if (this.#busy === busy) this.removeAttribute('aria-busy');
      }
    }

    #render(r: ClassifyResult, photo: ImageBitmap): void {
      const atlas = this.getAttribute('atlas');
      const cards = r.predictions.map((p: Prediction, rank) =>
        h(
          'section',
          { class: 'pred', part: 'prediction', 'aria-label': `${rank + 1}. ${p.label}` },
          h('h3', {}, p.label, h('span', {}, pct(p.probability))),
          h('div', { class: 'bar', role: 'presentation' }, h('i')),
          p.evidence.length
            ? h(
                'ul',
                { class: 'pairs', 'aria-label': `Why ${p.label}` },
                ...p.evidence.map((e) => this.#pair(e, photo, atlas)),
              )
            : h('p', {}, 'No live prototype contributed.'),
        ),
      );
      // Widths through the CSSOM, never style attributes (blocked by a strict style-src).
      cards.forEach(
        (c, i) => ((c.querySelector('.bar i') as HTMLElement).style.width = pct(r.predictions[i].probability)),
      );
      this.#results.replaceChildren(...cards);
    }

    #pair(e: EvidenceItem, photo: ImageBitmap, atlas: string | null): HTMLLIElement {
      const canvas = h('canvas', {
        role: 'img',
        'aria-label': `Your photo, region ${e.box.x},${e.box.y} ${e.box.w}×${e.box.h}`,
      });
      drawPhotoWithBox(
        canvas,
        photo,
        e.box,
        getComputedStyle(this).getPropertyValue('--protoatlas-box').trim() || '#f59e0b',
      );
      const img = e.prototypeImageUrl
        ? h('img', {
            src: e.prototypeImageUrl,
            alt: `Prototype ${e.prototypeId}`,
            width: '160',
            height: '160',
            loading: 'lazy',
            decoding: 'async',
          })
        : h('p', {}, `Prototype ${e.prototypeId}`);
      const caption = atlas
        ? h(
            'a',
            { href: new URL(`prototypes/${e.prototypeId}/`, new URL(atlas, document.baseURI)).href },
            `prototype ${e.prototypeId}`,
          )
        : `prototype ${e.prototypeId}`;
      return h(
        'li',
        { class: 'pair', part: 'evidence', 'data-prototype': String(e.prototypeId) },
        h('figure', {}, canvas, h('figcaption', {}, 'your photo')),
        h('span', { class: 'arrow', 'aria-hidden': 'true' }, 'looks like'),
        h('figure', {}, img, h('figcaption', {}, caption)),
        h(
          'p',
          { class: 'points' },
          h('b', { class: e.contribution < 0 ? 'neg' : undefined }, `${signed(e.contribution)} points`),
          ` = similarity ${e.similarity.toFixed(2)} × weight ${e.weight.toFixed(2)}`,
        ),
      );
    }
  }

  customElements.define('protoatlas-classifier', ProtoAtlasClassifier);
}

/** Boxes in this browser's pixels, should the API have decoded the photo at another size. */
function fitBoxes(r: ClassifyResponse, photo: ImageBitmap): ClassifyResponse {
  const from = r.image;
  if (!from || (from.width === photo.width && from.height === photo.height)) return r;
  const sx = photo.width / from.width;
  const sy = photo.height / from.height;
  const fit = (b: EvidenceItem['box']) => ({
    x: Math.round(b.x * sx),
    y: Math.round(b.y * sy),
    w: Math.max(1, Math.round(b.w * sx)),
    h: Math.max(1, Math.round(b.h * sy)),
  });
  return {
    ...r,
    predictions: r.predictions.map((p) => ({ ...p, evidence: p.evidence.map((e) => ({ ...e, box: fit(e.box) })) })),
  };
}

/** The whole photo, scaled into a square canvas, with the matched region outlined. */
function drawPhotoWithBox(
  canvas: HTMLCanvasElement,
  photo: ImageBitmap,
  box: { x: number; y: number; w: number; h: number },
  colour: string,
): void {
  const side = 320;
  canvas.width = side;
  canvas.height = side;
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  const s = Math.min(side / photo.width, side / photo.height);
  const w = photo.width * s;
  const h = photo.height * s;
  const ox = (side - w) / 2;
  const oy = (side - h) / 2;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(photo, ox, oy, w, h);
  const bx = ox + box.x * s;
  const by = oy + box.y * s;
  const bw = box.w * s;
  const bh = box.h * s;
  // Dim everything but the box, then outline it with a dark halo so it shows on any photo.
  ctx.fillStyle = 'rgba(0,0,0,0.35)';
  ctx.beginPath();
  ctx.rect(ox, oy, w, h);
  ctx.rect(bx, by, bw, bh);
  ctx.fill('evenodd');
  ctx.lineWidth = 5;
  ctx.strokeStyle = 'rgba(0,0,0,0.6)';
  ctx.strokeRect(bx, by, bw, bh);
  ctx.lineWidth = 3;
  ctx.strokeStyle = colour;
  ctx.strokeRect(bx, by, bw, bh);
}
