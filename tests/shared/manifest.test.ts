import { describe, expect, it } from 'vitest';
import {
  ManifestError,
  ManifestSchema,
  manifestLastLayer,
  parseManifest,
  referencedFiles,
  type Manifest,
} from '@protoatlas/shared';
import { tinyManifest } from '../support/tiny-manifest.ts';

describe('bundle manifest schema', () => {
  it('round-trips through JSON', () => {
    const m = tinyManifest();
    const back = parseManifest(JSON.parse(JSON.stringify(m)));
    expect(back).toEqual(m);
    expect(Array.from(manifestLastLayer(back))).toEqual([1, -0.5, -0.5, 1]);
  });

  it('refuses a broken manifest and names the field', () => {
    const m = tinyManifest() as unknown as {
      prototypes: { classId: unknown; files: { crop: string } }[];
      schemaVersion: number;
    };
    m.prototypes[1].classId = 'blue';
    expect(() => parseManifest(m, 'bundle/manifest.json')).toThrow(ManifestError);
    expect(() => parseManifest(m, 'bundle/manifest.json')).toThrow(
      /bundle\/manifest\.json.*\n.*prototypes\.1\.classId/,
    );
    const n = tinyManifest() as unknown as { schemaVersion: number };
    n.schemaVersion = 2;
    expect(() => parseManifest(n)).toThrow(ManifestError);
    expect(() => parseManifest(n)).toThrow(/schemaVersion/);
  });

  it('refuses paths that leave the bundle', () => {
    const m = tinyManifest();
    m.prototypes[0].files!.crop = '../../etc/passwd';
    expect(() => parseManifest(m)).toThrow(ManifestError);
    const crop = expect.objectContaining({ path: 'prototypes.0.files.crop' });
    expect(() => parseManifest(m)).toThrow(expect.objectContaining({ issues: [crop] }));
  });

  it('checks cross-field consistency: weights per class, ids, classes', () => {
    const m = tinyManifest();
    m.prototypes[0].weights = [1];
    m.prototypes[1].classId = 5;
    expect(() => parseManifest(m)).toThrow(ManifestError);
    expect(() => parseManifest(m)).toThrow(
      /prototypes\.0\.weights: has 1 weights, expected one per class \(2\)[\s\S]*prototypes\.1\.classId/,
    );
  });

  describe('files.integrity', () => {
    const sha = (c: string) => c.repeat(64);
    const withIntegrity = (): Manifest => {
      const m = tinyManifest();
      m.files.integrity = referencedFiles(m).map((path, i) => ({ path, bytes: 100 + i, sha256: sha('abcdef'[i % 6]) }));
      return m;
    };

    it('lists every file the manifest names: models and each prototype picture', () => {
      expect(referencedFiles(tinyManifest())).toEqual([
        'model/model.json',
        'model/weights.bin',
        'prototypes/0/crop.webp',
        'prototypes/0/heatmap.webp',
        'prototypes/0/nearest-1.webp',
        'prototypes/0/source.webp',
        'prototypes/1/crop.webp',
        'prototypes/1/heatmap.webp',
        'prototypes/1/nearest-1.webp',
        'prototypes/1/source.webp',
      ]);
    });

    it('is optional: manifests written before it still parse, and it round-trips when present', () => {
      expect(parseManifest(JSON.parse(JSON.stringify(tinyManifest()))).files.integrity).toBeUndefined();
      const m = withIntegrity();
      expect(parseManifest(JSON.parse(JSON.stringify(m))).files.integrity).toEqual(m.files.integrity);
    });

    it('is ignored by a reader of the schema without it (no version bump needed)', () => {
      // The schema as it was: files without `integrity`. zod objects drop unknown keys.
      const before = ManifestSchema.extend({ files: ManifestSchema.shape.files.omit({ integrity: true }) });
      const r = before.safeParse(JSON.parse(JSON.stringify(withIntegrity())));
      expect(r.success).toBe(true);
      expect(r.data!.files).not.toHaveProperty('integrity');
    });

    it('must cover every named file and agree with the model records', () => {
      const m = withIntegrity();
      m.files.integrity = m.files.integrity!.filter((f) => f.path !== 'prototypes/1/crop.webp');
      const unlisted = /files\.integrity: does not list prototypes\/1\/crop\.webp, which the manifest names/;
      expect(() => parseManifest(m)).toThrow(unlisted);
      const n = withIntegrity();
      const fp32 = { path: 'onnx/model.fp32.onnx', bytes: 10, sha256: sha('1') };
      n.files.onnx = { fp32, int8: null, inputs: [], outputs: [] };
      n.files.integrity!.push({ path: 'onnx/model.fp32.onnx', bytes: 10, sha256: sha('2') });
      const disagrees = /onnx\/model\.fp32\.onnx is listed with a different size or sha256 than its model record/;
      expect(() => parseManifest(n)).toThrow(disagrees);
      n.files.integrity!.push({ path: 'onnx/model.fp32.onnx', bytes: 10, sha256: sha('1') });
      expect(() => parseManifest(n)).toThrow(/lists a path twice/);
    });
  });
});
