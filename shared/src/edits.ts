/**
 * The edits file: a person's corrections to a trained model, as data
 * (prototype debugging, issue 16). `npm run edit` applies one to a run and
 * writes a new model and bundle version; the atlas's review mode writes them.
 * Forbid/keep follow ProtoPDebug (Bontempelli et al., ICLR 2023): a concept is
 * a set of training patches that no prototype may (forbid) or some prototype of
 * the patch's class must (keep) look like.
 */
import { z } from 'zod';
import type { ManifestPrototype } from './manifest.ts';

/** Bumped on any change that an older `edit` would misread. */
export const EDITS_SCHEMA_VERSION = 1;

const Id = z.number().int().nonnegative();

/** One cell of a training image's feature grid (the manifest's patch coordinates). */
export const ConceptPatchSchema = z.object({
  imageId: z.string().min(1),
  row: Id,
  col: Id,
});

const Note = z.string().max(2000).optional();

export const EditSchema = z.discriminatedUnion('action', [
  /** Remove a prototype: its last-layer row becomes 0 and the last layer is refit. */
  z.object({
    action: z.literal('drop'),
    prototype: Id,
    reason: z.string().trim().min(1, 'say why the prototype is dropped'),
  }),
  /** Move a prototype to another class; the last layer is refit. */
  z.object({ action: z.literal('relabel'), prototype: Id, classId: Id, note: Note }),
  /** No prototype may look like these patches (e.g. sky, a photo border). */
  z.object({
    action: z.literal('forbid'),
    concept: z.string().trim().min(1),
    patches: z.array(ConceptPatchSchema).min(1),
    fromPrototype: Id.optional(),
    note: Note,
  }),
  /** Some prototype of each patch's class must keep looking like these patches. */
  z.object({
    action: z.literal('keep'),
    concept: z.string().trim().min(1),
    patches: z.array(ConceptPatchSchema).min(1),
    fromPrototype: Id.optional(),
    note: Note,
  }),
]);

export const EditsFileSchema = z.object({
  schema: z.literal('protoatlas-edits'),
  version: z.literal(EDITS_SCHEMA_VERSION),
  /** The model version the edits were made against (from the bundle manifest). */
  model: z.object({ id: z.string(), version: z.string() }).optional(),
  edits: z.array(EditSchema).min(1, 'an edits file needs at least one edit'),
});

export type ConceptPatch = z.infer<typeof ConceptPatchSchema>;
export type Edit = z.infer<typeof EditSchema>;
export type EditsFile = z.infer<typeof EditsFileSchema>;
export type EditAction = Edit['action'];

/** An edits file failed validation; the message names each offending field. */
export class EditsError extends Error {
  constructor(source: string, issues: { path: string; message: string }[]) {
    const shown = issues.slice(0, 8).map((i) => `  ${i.path || '(root)'}: ${i.message}`);
    const more = issues.length > 8 ? `\n  ... and ${issues.length - 8} more` : '';
    super(`${source} is not a valid ProtoAtlas edits file:\n${shown.join('\n')}${more}`);
    this.name = 'EditsError';
  }
}

/** Validate an (already JSON-parsed) edits file against the schema. */
export function parseEdits(raw: unknown, source = 'edits.json'): EditsFile {
  const r = EditsFileSchema.safeParse(raw);
  if (!r.success)
    throw new EditsError(
      source,
      r.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
    );
  return r.data;
}

/**
 * Check edits against the model they apply to: prototype and class ids exist,
 * patches lie on the feature grid, and no prototype gets two conflicting edits.
 */
export function checkEdits(
  edits: EditsFile,
  model: { prototypes: number; classes: number; grid: { height: number; width: number } },
  source = 'edits.json',
): void {
  const issues: { path: string; message: string }[] = [];
  const touched = new Map<number, string>();
  edits.edits.forEach((e, i) => {
    const at = `edits.${i}`;
    if (e.action === 'drop' || e.action === 'relabel') {
      if (e.prototype >= model.prototypes)
        issues.push({
          path: `${at}.prototype`,
          message: `${e.prototype} is not a prototype (the model has ${model.prototypes}: 0-${model.prototypes - 1})`,
        });
      const before = touched.get(e.prototype);
      if (before)
        issues.push({
          path: `${at}.prototype`,
          message: `prototype ${e.prototype} already has a "${before}" edit; give each prototype one drop or relabel`,
        });
      touched.set(e.prototype, e.action);
    }
    if (e.action === 'relabel' && e.classId >= model.classes)
      issues.push({ path: `${at}.classId`, message: `${e.classId} is not a class (the model has ${model.classes})` });
    if (e.action === 'forbid' || e.action === 'keep') {
      if (e.fromPrototype !== undefined && e.fromPrototype >= model.prototypes)
        issues.push({ path: `${at}.fromPrototype`, message: `${e.fromPrototype} is not a prototype` });
      e.patches.forEach((p, k) => {
        if (p.row >= model.grid.height || p.col >= model.grid.width) {
          issues.push({
            path: `${at}.patches.${k}`,
            message: `cell (${p.row}, ${p.col}) lies outside the ${model.grid.height}x${model.grid.width} feature grid`,
          });
        }
      });
    }
  });
  if (issues.length) throw new EditsError(source, issues);
}

/**
 * The concept a prototype shows, as patches: its source patch and its nearest
 * training patches (what the atlas offers to forbid or keep).
 */
export function prototypeConcept(p: Pick<ManifestPrototype, 'source' | 'nearest'>): ConceptPatch[] {
  const out: ConceptPatch[] = [];
  if (p.source) out.push({ imageId: p.source.imageId, row: p.source.patch.row, col: p.source.patch.col });
  for (const n of p.nearest.train) out.push({ imageId: n.imageId, row: n.patch.row, col: n.patch.col });
  return out;
}

/** Counts of each action, for reports and the version chain. */
export function editCounts(edits: EditsFile): Record<EditAction, number> {
  const c: Record<EditAction, number> = { drop: 0, relabel: 0, forbid: 0, keep: 0 };
  for (const e of edits.edits) c[e.action]++;
  return c;
}
