/**
 * Shadow-DOM styles. Every colour, radius and font comes from a
 * --protoatlas-* custom property (inherited through the shadow boundary), so a
 * host page themes the widget without reaching into it.
 */
export const CSS = `
:host {
  --_accent: var(--protoatlas-accent, #2563eb);
  --_bg: var(--protoatlas-bg, #ffffff);
  --_fg: var(--protoatlas-fg, #1f2937);
  --_muted: var(--protoatlas-muted, #6b7280);
  --_line: var(--protoatlas-border, #d1d5db);
  --_box: var(--protoatlas-box, #f59e0b);
  --_radius: var(--protoatlas-radius, 12px);
  --_error: var(--protoatlas-error, #b91c1c);
  --_on-accent: var(--protoatlas-on-accent, #ffffff);
  display: block;
  color: var(--_fg);
  background: var(--_bg);
  font: var(--protoatlas-font, 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif);
  border: 1px solid var(--_line);
  border-radius: var(--_radius);
  padding: 1rem;
  container-type: inline-size;
}
:host([hidden]), [hidden] { display: none !important; }
* { box-sizing: border-box; }
.top { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center; justify-content: space-between; margin-bottom: .75rem; }
.mode { margin: 0; color: var(--_muted); font-size: .875em; }
.mode b { color: var(--_fg); font-weight: 600; }
fieldset { border: 0; margin: 0; padding: 0; display: inline-flex; border: 1px solid var(--_line); border-radius: 999px; overflow: hidden; }
legend { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
fieldset label { padding: .25rem .75rem; cursor: pointer; font-size: .875em; }
fieldset input { position: absolute; opacity: 0; pointer-events: none; }
fieldset label:has(input:checked) { background: var(--_accent); color: var(--_on-accent); }
fieldset label:has(input:focus-visible) { outline: 2px solid var(--_accent); outline-offset: -4px; }
.drop { display: grid; place-items: center; gap: .5rem; text-align: center; min-height: 9rem; padding: 1rem;
  border: 2px dashed var(--_line); border-radius: calc(var(--_radius) - 4px); transition: border-color .15s, background .15s; }
.drop.over { border-color: var(--_accent); background: color-mix(in srgb, var(--_accent) 8%, transparent); }
.drop p { margin: 0; color: var(--_muted); }
.buttons { display: flex; flex-wrap: wrap; gap: .5rem; justify-content: center; }
.btn { display: inline-flex; align-items: center; gap: .4rem; padding: .5rem 1rem; border-radius: 999px; border: 1px solid var(--_accent);
  background: var(--_accent); color: var(--_on-accent); font: inherit; font-weight: 600; cursor: pointer; }
.btn.secondary { background: transparent; color: var(--_accent); }
.btn:focus-within, .btn:focus-visible { outline: 3px solid color-mix(in srgb, var(--_accent) 45%, transparent); outline-offset: 2px; }
.btn input { position: absolute; width: 1px; height: 1px; opacity: 0; }
.status { min-height: 1.5em; margin: .75rem 0 0; color: var(--_muted); }
.status.error { color: var(--_error); }
.results { display: grid; gap: 1rem; margin-top: .5rem; }
.pred { border-top: 1px solid var(--_line); padding-top: .75rem; }
.pred h3 { margin: 0; font-size: 1.05em; display: flex; justify-content: space-between; gap: 1rem; }
.pred h3 span { color: var(--_muted); font-weight: 500; white-space: nowrap; }
.pred:first-child h3 { font-size: 1.2em; }
.bar { height: 6px; border-radius: 3px; background: color-mix(in srgb, var(--_line) 60%, transparent); margin: .35rem 0 .75rem; overflow: hidden; }
.bar i { display: block; height: 100%; background: var(--_accent); border-radius: 3px; }
.pairs { list-style: none; margin: 0; padding: 0; display: grid; gap: .75rem; grid-template-columns: repeat(auto-fill, minmax(17rem, 1fr)); }
.pair { display: grid; grid-template-columns: 1fr auto 1fr; align-items: center; gap: .4rem; }
.pair figure { margin: 0; }
.pair canvas, .pair img { display: block; width: 100%; height: auto; aspect-ratio: 1; object-fit: contain; border-radius: 6px;
  background: color-mix(in srgb, var(--_line) 35%, transparent); }
.pair img { image-rendering: auto; }
.pair .arrow { color: var(--_muted); font-size: .8em; text-align: center; }
.pair figcaption { font-size: .8em; color: var(--_muted); text-align: center; margin-top: .2rem; }
.points { grid-column: 1 / -1; font-size: .8em; text-align: center; margin: 0; color: var(--_muted); }
.points b { color: var(--_fg); }
.points .neg { color: var(--_error); }
a { color: var(--_accent); }
@container (max-width: 26rem) { .pairs { grid-template-columns: 1fr; } }
@media (prefers-reduced-motion: reduce) { .drop { transition: none; } }
`;
