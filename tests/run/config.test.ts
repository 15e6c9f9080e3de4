/** Config overrides: merged onto a preset, validated, and a bad field is named in the error. */
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../trainer/src/config/presets.ts';

const bad = (override: unknown) => () => resolveConfig('demo', override, 'overrides.json');

describe('config overrides', () => {
  it('merge onto the preset: objects merge, arrays and scalars replace', () => {
    const c = resolveConfig(
      'demo',
      { warmup: { epochs: 4 }, head: { addOn: [{ channels: 8, activation: 'relu' }] } },
      'o.json',
    );
    expect(c.warmup.epochs).toBe(4);
    expect(c.warmup.batchSize).toBe(32); // kept from the preset
    expect(c.head.addOn).toEqual([{ channels: 8, activation: 'relu' }]);
    expect(c.head.prototypesPerClass).toBe(5);
  });

  it('name the bad field and the source of the override', () => {
    expect(bad({ warmup: { epochs: -1 } })).toThrow(/preset demo \+ overrides\.json[\s\S]*- warmup\.epochs: .*>=0/);
    expect(bad({ prune: { mode: 'sometimes' } })).toThrow(/- prune\.mode: .*"auto"\|"on"\|"off"/);
    expect(bad({ backbone: { kind: 'resnet' } })).toThrow(/- backbone\.kind: .*'onnx' \| 'tfjs-layers' \| 'small-cnn'/);
    expect(bad({ head: { addOn: [{ channels: 4, activation: 'tanhh' }] } })).toThrow(/- head\.addOn\.0\.activation: /);
    expect(bad({ lastLayer: { lr: 'fast' } })).toThrow(/- lastLayer\.lr: .*number/);
  });

  it('name every bad field at once', () => {
    expect(bad({ seed: -3, joint: { batchSize: 0 } })).toThrow(/- seed: [\s\S]*- joint\.batchSize: /);
  });

  it('refuse a misspelt field instead of silently ignoring it', () => {
    expect(bad({ warmpu: { epochs: 3 } })).toThrow(/- warmpu: not a config field/);
    expect(bad({ prune: { treshold: 2 } })).toThrow(/- prune\.treshold: not a config field/);
    expect(bad({ head: { addOn: [{ channels: 4, activation: 'relu', bias: false }] } })).toThrow(
      /- head\.addOn\.0\.bias: not a config field/,
    );
  });

  it('refuse the shallow alignment term without an ONNX backbone that trains from the image, or without its tensor', () => {
    expect(bad({ loss: { shallowAlignment: 0.5, shallowAlignmentTensor: 'x' } })).toThrow(
      /- loss\.shallowAlignment: needs an ONNX backbone that trains from the image.*backbone\.kind is "small-cnn"/,
    );
    expect(() => resolveConfig('cub200', { loss: { shallowAlignment: 0.5, shallowAlignmentTensor: 'x' } })).toThrow(
      /- loss\.shallowAlignment: .*the backbone is frozen/,
    );
    expect(() =>
      resolveConfig('cub200', {
        backbone: { trainable: true, trainFrom: '624_quantized' },
        loss: { shallowAlignment: 0.5, shallowAlignmentTensor: 'x' },
      }),
    ).toThrow(/only the layers after 624_quantized train/);
    expect(() => resolveConfig('cub200-finetune', { loss: { shallowAlignment: 0.5 } })).toThrow(
      /- loss\.shallowAlignmentTensor: name the backbone tensor.*339_quantized/,
    );
    expect(
      resolveConfig('cub200-finetune', { loss: { shallowAlignment: 0.5, shallowAlignmentTensor: '339_quantized' } })
        .loss,
    ).toMatchObject({ shallowAlignment: 0.5, shallowAlignmentMargin: 0.1, shallowAlignmentTensor: '339_quantized' });
  });

  it('take a top-k similarity only without a bundle, which computes the single closest patch', () => {
    expect(bad({ head: { similarityTopK: 3 } })).toThrow(
      /- head\.similarityTopK: 3 averages several patches.*"bundle": \{"enabled": false\}/,
    );
    expect(bad({ head: { similarityTopK: 0 } })).toThrow(/- head\.similarityTopK: /);
    expect(resolveConfig('cub200', {}).head.similarityTopK).toBe(1);
    expect(
      resolveConfig('cub200', { head: { similarityTopK: 3 }, bundle: { enabled: false } }).head.similarityTopK,
    ).toBe(3);
  });

  it('refuse distillation without a frozen pretrained backbone (its teacher is their baseline)', () => {
    expect(bad({ loss: { distillation: 1 } })).toThrow(
      /- loss\.distillation: needs a frozen pretrained backbone.*small-cnn/,
    );
    expect(() => resolveConfig('cub200-finetune', { loss: { distillation: 1 } })).toThrow(
      /- loss\.distillation: needs a frozen pretrained backbone.*onnx backbone here trains/,
    );
    expect(bad({ loss: { distillationTemperature: 0 } })).toThrow(/- loss\.distillationTemperature: /);
    expect(resolveConfig('cub200', { loss: { distillation: 1 } }).loss).toMatchObject({
      distillation: 1,
      distillationTemperature: 4,
    });
  });

  it('refuse an unknown preset, listing the known ones', () => {
    expect(() => resolveConfig('cub300')).toThrow(/unknown preset "cub300"; choose one of: .*demo.*cub200/);
  });
});
