/** Flattening a JSON Schema into reference rows: paths, types, defaults, bounds, union branches. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { fieldTable, type JsonSchema, schemaFields } from '../../scripts/docs/schema-fields.ts';

const Source = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('file'), path: z.string().describe('where it is'), size: z.number().int().min(1) }),
  z.object({ kind: z.literal('url'), path: z.string().describe('where it is'), retries: z.number().default(3) }),
]);
const Schema = z.object({
  name: z.string().describe('what it is called'),
  ratio: z.number().min(0).max(1).default(0.5),
  mode: z.enum(['a', 'b']).optional(),
  items: z.array(z.object({ id: z.number().int().nonnegative() })).default([]),
  box: z.tuple([z.number(), z.number()]).nullable(),
  source: Source,
});

describe('schemaFields', () => {
  const rows = schemaFields(z.toJSONSchema(Schema, { io: 'input' }) as JsonSchema);
  const row = (path: string) => rows.filter((r) => r.path === path);

  it('lists every field depth first with its type, default, bounds and description', () => {
    expect(rows.map((r) => r.path)).toEqual([
      'name',
      'ratio',
      'mode',
      'items',
      'items[].id',
      'box',
      'source',
      'source.kind',
      'source.path',
      'source.size',
      'source.kind',
      'source.retries',
    ]);
    expect(row('name')[0]).toMatchObject({
      type: 'string',
      required: true,
      default: null,
      description: 'what it is called',
    });
    expect(row('ratio')[0]).toMatchObject({ type: 'number', required: false, default: '0.5', allowed: '0 – 1' });
    expect(row('mode')[0]).toMatchObject({ type: 'string', required: false, default: null, allowed: "'a', 'b'" });
    expect(row('items[].id')[0]).toMatchObject({ type: 'integer', required: true, allowed: '≥ 0' });
    expect(row('box')[0]).toMatchObject({ type: '[number, number] \\| null', required: true });
    expect(row('source')[0].type).toBe('object (by `kind`)');
  });

  it('tags union branches, and merges a field both branches share', () => {
    expect(row('source.path')).toEqual([
      expect.objectContaining({ variants: ["kind: 'file'", "kind: 'url'"], description: 'where it is' }),
    ]);
    expect(row('source.size')[0]).toMatchObject({ variants: ["kind: 'file'"], allowed: '≥ 1' });
    expect(row('source.retries')[0]).toMatchObject({ variants: ["kind: 'url'"], default: '3' });
    const table = fieldTable(rows);
    expect(table).toContain("| `source.path` | string | required |  | where it is (kind 'file' or 'url') |");
    expect(table).toContain('| `name` | string | required |  | what it is called |');
    expect(table).toContain("| `source.size` | integer | required | ≥ 1 | (kind 'file') |");
  });
});
