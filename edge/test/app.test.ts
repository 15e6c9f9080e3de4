import { describe, expect, it } from 'vitest';
import { createApp } from '../src/app.ts';

describe('edge app', () => {
  it('answers /health', async () => {
    const res = await createApp({ bundleName: 'demo' }).request('/health');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, bundle: 'demo' });
  });
  it('refuses /classify with a clear 503 while no bundle is loaded', async () => {
    const res = await createApp().request('/classify', { method: 'POST', body: new Uint8Array([1, 2, 3]) });
    expect(res.status).toBe(503);
    expect((await res.json()).error).toMatch(/no model bundle/);
  });
  it('returns JSON 404 for unknown routes', async () => {
    const res = await createApp().request('/nope');
    expect(res.status).toBe(404);
    expect((await res.json()).error).toBe('no route GET /nope');
  });
});
