/**
 * The atlas's review mode, in the browser: marks (drop, forbid, keep, with a
 * note) kept in localStorage per model version, and the edits file they make
 * (the format `npm run edit` reads; shared/src/edits.ts). No server involved.
 * Type imports only, so no schema code ships to the page.
 */
import type { ConceptPatch, Edit, EditsFile } from '@protoatlas/shared';

export type MarkAction = 'drop' | 'forbid' | 'keep';

export interface Mark {
  action: MarkAction;
  note: string;
  /** The prototype's concept (source + nearest training patches), for forbid and keep. */
  concept: ConceptPatch[];
}

export type Marks = Record<string, Mark>;

export interface ModelRef {
  id: string;
  version: string;
}

const ACTIONS: MarkAction[] = ['drop', 'forbid', 'keep'];

export const storageKey = (model: ModelRef) => `protoatlas-review:${model.id}@${model.version}`;

/** Marks saved for this model version; anything unreadable counts as none. */
export function loadMarks(storage: Pick<Storage, 'getItem'>, model: ModelRef): Marks {
  try {
    const raw = JSON.parse(storage.getItem(storageKey(model)) ?? '{}') as Record<string, Partial<Mark>>;
    const out: Marks = {};
    for (const [id, m] of Object.entries(raw)) {
      if (!/^\d+$/.test(id) || !m || !ACTIONS.includes(m.action as MarkAction)) continue;
      out[id] = {
        action: m.action as MarkAction,
        note: typeof m.note === 'string' ? m.note : '',
        concept: Array.isArray(m.concept) ? m.concept : [],
      };
    }
    return out;
  } catch {
    return {};
  }
}

export function saveMarks(storage: Pick<Storage, 'setItem'>, model: ModelRef, marks: Marks): void {
  storage.setItem(storageKey(model), JSON.stringify(marks));
}

/** The edits file for a set of marks, prototypes in id order. */
export function editsFromMarks(marks: Marks, model: ModelRef): EditsFile {
  const edits: Edit[] = Object.entries(marks)
    .sort((a, b) => Number(a[0]) - Number(b[0]))
    .map(([key, m]) => {
      const id = Number(key);
      const note = m.note.trim();
      if (m.action === 'drop')
        return { action: 'drop', prototype: id, reason: note || 'marked for removal in the atlas review' };
      return {
        action: m.action,
        concept: `prototype ${id}${note ? `: ${note}` : ''}`,
        patches: m.concept,
        fromPrototype: id,
        ...(note ? { note } : {}),
      };
    });
  return { schema: 'protoatlas-edits', version: 1, model: { id: model.id, version: model.version }, edits };
}

/** File name of the download: names the version it edits. */
export const editsFileName = (model: ModelRef) => `edits-${model.id}.json`;

/** The command that applies the file (the run directory is the reader's). */
export function editCommand(model: ModelRef): string {
  return `npm run edit --workspace trainer -- <run dir> --edits ${editsFileName(model)} --out <new run dir>`;
}
