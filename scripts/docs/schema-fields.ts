/**
 * Flattens a JSON Schema (as zod's toJSONSchema or an OpenAPI document writes it) into one row per field
 * (path, type, default, allowed values, description) and renders the rows as a Markdown table, so the
 * generated reference pages say exactly what the schemas say.
 */

/** The subset of JSON Schema that zod and @hono/zod-openapi write. */
export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  prefixItems?: JsonSchema[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  description?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minItems?: number;
  minLength?: number;
  pattern?: string;
  format?: string;
  nullable?: boolean;
  $ref?: string;
}

export interface FieldRow {
  path: string;
  type: string;
  /** JSON of the default; null when the field has none. */
  default: string | null;
  required: boolean;
  allowed: string;
  description: string;
  /** The union variants it belongs to, e.g. ['kind: onnx']; empty outside unions. */
  variants: string[];
}

/** Zod writes Number.MAX_SAFE_INTEGER as the maximum of every int: it says nothing. */
const UNBOUNDED = new Set([Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER]);

const isNull = (s: JsonSchema) => s.type === 'null';

/** Alternatives of a union, without the null branch (which becomes "| null"). */
function alternatives(s: JsonSchema): JsonSchema[] | null {
  const alts = s.anyOf ?? s.oneOf;
  return alts ? alts.filter((a) => !isNull(a)) : null;
}

const nullable = (s: JsonSchema) =>
  Boolean(s.nullable) || (s.anyOf ?? s.oneOf ?? []).some(isNull) || (Array.isArray(s.type) && s.type.includes('null'));

const literal = (v: unknown) => (typeof v === 'string' ? `'${v}'` : JSON.stringify(v));

/** A short type name: `integer`, `string`, `[number, number, number]`, `Box[]`, `'auto' \| integer`. */
export function typeName(s: JsonSchema, resolve: (ref: string) => JsonSchema = refError): string {
  const base = (() => {
    if (s.$ref) return refName(s.$ref);
    const alts = alternatives(s);
    if (alts) {
      if (alts.length === 1) return typeName(alts[0], resolve);
      return alts.map((a) => typeName(a, resolve)).join(' \\| ');
    }
    if (s.const !== undefined) return literal(s.const);
    if (s.enum) return typeof s.enum[0] === 'number' ? 'number' : 'string';
    if (s.prefixItems) return `[${s.prefixItems.map((p) => typeName(p, resolve)).join(', ')}]`;
    const t = Array.isArray(s.type) ? s.type.filter((x) => x !== 'null').join(' \\| ') : s.type;
    if (t === 'array') {
      if (!s.items) return 'array';
      const item = typeName(s.items, resolve);
      return item.includes(' \\| ') ? `(${item})[]` : `${item}[]`;
    }
    if (t === 'string' && s.format) return `string (${s.format})`;
    return t ?? 'any';
  })();
  return nullable(s) ? `${base} \\| null` : base;
}

const refName = (ref: string) => ref.split('/').pop() ?? ref;
const refError = (ref: string): JsonSchema => {
  throw new Error(`unresolved $ref ${ref}`);
};

/** Allowed values and bounds, e.g. `'int8', 'float'` or `0 – 45` or `≥ 1`. */
export function allowedValues(s: JsonSchema): string {
  const alts = alternatives(s);
  if (alts && alts.length > 0 && alts.every((a) => a.const !== undefined))
    return alts.map((a) => literal(a.const)).join(', ');
  if (alts && alts.length === 1) return allowedValues(alts[0]);
  if (alts)
    return alts
      .map((a) => (a.const !== undefined ? literal(a.const) : allowedValues(a)))
      .filter(Boolean)
      .join(' or ');
  if (s.enum) return s.enum.map(literal).join(', ');
  const parts: string[] = [];
  const lo = s.minimum !== undefined && !UNBOUNDED.has(s.minimum) ? s.minimum : undefined;
  const hi = s.maximum !== undefined && !UNBOUNDED.has(s.maximum) ? s.maximum : undefined;
  if (lo !== undefined && hi !== undefined) parts.push(`${lo} – ${hi}`);
  else if (lo !== undefined) parts.push(`≥ ${lo}`);
  else if (hi !== undefined) parts.push(`≤ ${hi}`);
  if (s.exclusiveMinimum !== undefined) parts.push(`> ${s.exclusiveMinimum}`);
  if (s.exclusiveMaximum !== undefined) parts.push(`< ${s.exclusiveMaximum}`);
  if (s.minItems !== undefined && s.minItems > 0 && !s.prefixItems)
    parts.push(`at least ${s.minItems} item${s.minItems > 1 ? 's' : ''}`);
  if (s.minLength !== undefined && s.minLength > 0) parts.push(`non-empty`);
  if (s.pattern && !s.format) parts.push(`matches \`${s.pattern}\``);
  return parts.join(', ');
}

/** The object schema behind a field, if it is one (through nullable unions and refs). */
function objectOf(s: JsonSchema, resolve: (ref: string) => JsonSchema): JsonSchema | null {
  if (s.$ref) return objectOf(resolve(s.$ref), resolve);
  if (s.properties) return s;
  const alts = alternatives(s);
  if (alts?.length === 1) return objectOf(alts[0], resolve);
  return null;
}

/** The discriminator of a union of objects: a property that is a constant in every branch. */
function discriminator(alts: JsonSchema[], resolve: (ref: string) => JsonSchema): string | null {
  const objects = alts.map((a) => objectOf(a, resolve));
  if (objects.some((o) => !o)) return null;
  const keys = Object.keys(objects[0]!.properties!);
  return keys.find((k) => objects.every((o) => o!.properties![k]?.const !== undefined)) ?? null;
}

/**
 * One row per field, depth first in schema order. Objects get a row (when they are not the root) and then
 * their fields; an array of objects continues as `path[].field`; a union of objects with a constant
 * discriminator lists each branch's fields, tagged with the branch.
 */
export function schemaFields(
  root: JsonSchema,
  opts: { resolve?: (ref: string) => JsonSchema; expandRefs?: boolean } = {},
): FieldRow[] {
  const resolve = opts.resolve ?? refError;
  const expandRefs = opts.expandRefs ?? true;
  const rows: FieldRow[] = [];

  const visit = (s: JsonSchema, path: string, required: boolean, variants: string[]) => {
    const target = s.$ref && expandRefs ? { ...resolve(s.$ref), ...withoutRef(s) } : s;
    if (path) {
      rows.push({
        path,
        type: typeName(s, resolve),
        default: target.default === undefined ? null : JSON.stringify(target.default),
        required,
        allowed: allowedValues(target),
        description: oneLine(target.description ?? s.description ?? ''),
        variants,
      });
    }
    const alts = alternatives(target);
    if (!expandRefs && (s.$ref || (alts?.length === 1 && alts[0].$ref))) return;
    if (alts && alts.length > 1) {
      const key = discriminator(alts, resolve);
      if (!key) return;
      if (path) rows[rows.length - 1].type = `object (by \`${key}\`)`;
      for (const alt of alts) {
        const branch = objectOf(alt, resolve)!;
        const tag = `${key}: ${literal(branch.properties![key].const)}`;
        for (const [name, field] of Object.entries(branch.properties!)) {
          const required = (branch.required ?? []).includes(name);
          visit(field, path ? `${path}.${name}` : name, required, [...variants, tag]);
        }
      }
      return;
    }
    const object = objectOf(target, resolve);
    if (object) {
      for (const [name, field] of Object.entries(object.properties!)) {
        visit(field, path ? `${path}.${name}` : name, (object.required ?? []).includes(name), variants);
      }
      return;
    }
    const items = target.items ?? (alts?.length === 1 ? alts[0].items : undefined);
    if (items && objectOf(items, resolve) && !(items.$ref && !expandRefs)) {
      const item = objectOf(items, resolve)!;
      for (const [name, field] of Object.entries(item.properties!)) {
        visit(field, `${path}[].${name}`, (item.required ?? []).includes(name), variants);
      }
    }
  };

  visit(root, '', true, []);
  return mergeVariants(rows);
}

const withoutRef = (s: JsonSchema): JsonSchema => {
  const { $ref: _ref, ...rest } = s;
  return rest;
};

const oneLine = (text: string) => text.replace(/\s+/g, ' ').trim();

/** Rows that are the same field in several union branches become one row naming all the branches. */
function mergeVariants(rows: FieldRow[]): FieldRow[] {
  const out: FieldRow[] = [];
  for (const row of rows) {
    const same = out.find(
      (r) =>
        r.path === row.path &&
        r.type === row.type &&
        r.default === row.default &&
        r.allowed === row.allowed &&
        r.description === row.description &&
        r.required === row.required &&
        r.variants.length > 0,
    );
    if (same) same.variants = [...same.variants, ...row.variants.filter((v) => !same.variants.includes(v))];
    else out.push({ ...row });
  }
  return out;
}

/** Escape what would break a table cell. */
export const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The rows as a Markdown table; `showDefaults` false drops the default column (response schemas). */
export function fieldTable(rows: FieldRow[], opts: { showDefaults?: boolean } = {}): string {
  const showDefaults = opts.showDefaults ?? true;
  const head = showDefaults
    ? '| field | type | default | allowed | description |\n| --- | --- | --- | --- | --- |'
    : '| field | type | allowed | description |\n| --- | --- | --- | --- |';
  const lines = rows.map((r) => {
    const when = r.variants.length ? ` (${variantLabel(r.variants)})` : '';
    const def = r.default !== null ? `\`${cell(r.default)}\`` : r.required ? 'required' : '—';
    const type = showDefaults || r.required ? r.type : `${r.type} (optional)`;
    const cells = [
      `\`${r.path}\``,
      type,
      ...(showDefaults ? [def] : []),
      cell(r.allowed),
      cell((r.description + when).trim()),
    ];
    return `| ${cells.join(' | ')} |`;
  });
  return [head, ...lines].join('\n');
}

/** Anchor of a Markdown heading, as GitHub makes it. */
export const anchor = (name: string) => name.toLowerCase().replace(/[^a-z0-9]+/g, '-');

/** Schema names in a type (`Box[]`, `Box \\| null`) as links to their sections. */
export function linkSchemaNames(type: string, names: string[]): string {
  return type.replace(/\b[A-Z][A-Za-z]*\b/g, (name) => (names.includes(name) ? `[${name}](#${anchor(name)})` : name));
}

/** `['kind: 'onnx'', 'kind: 'tfjs-layers'']` → `kind 'onnx' or 'tfjs-layers'`. */
function variantLabel(variants: string[]): string {
  const byKey = new Map<string, string[]>();
  for (const v of variants) {
    const [key, value] = v.split(': ');
    byKey.set(key, [...(byKey.get(key) ?? []), value]);
  }
  return [...byKey].map(([key, values]) => `${key} ${values.join(' or ')}`).join('; ');
}
