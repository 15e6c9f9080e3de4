import { defineConfig } from 'astro/config';
import { protoatlas } from './src/integration.ts';

// PROTOATLAS_SITE_BASE hosts the atlas under a sub-path (e.g. /atlas/); every link goes through it.
export default defineConfig({
  site: process.env.PROTOATLAS_SITE_URL || undefined,
  base: process.env.PROTOATLAS_SITE_BASE || '/',
  trailingSlash: 'always',
  build: { format: 'directory', inlineStylesheets: 'never' },
  devToolbar: { enabled: false },
  // Page scripts as files, never inlined: the atlas then also runs under a strict script-src CSP.
  vite: { build: { assetsInlineLimit: 0 } },
  integrations: [protoatlas()],
});
