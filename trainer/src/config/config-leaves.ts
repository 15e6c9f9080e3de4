/** A config as its leaf values by dotted path: what docs/config.md tabulates and what a branched run compares. */

/** Leaf values of a config by dotted path; arrays are leaves (an override replaces them whole). */
export function configLeaves(value: unknown, path = ''): [string, unknown][] {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    return Object.entries(value).flatMap(([k, v]) => configLeaves(v, path ? `${path}.${k}` : k));
  }
  return [[path, value]];
}
