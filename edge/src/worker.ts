import { createApp } from './app.ts';

// Cloudflare Workers entry (wrangler.toml `main`).
export default createApp();
