/**
 * `npm run dev` / `npm run deploy` (edge workspace): stages $PROTOATLAS_BUNDLE
 * as static assets, then runs wrangler with the root wrangler.toml.
 *
 *   PROTOATLAS_BUNDLE=runs/demo/bundle npm run dev --workspace edge -- --port 8787
 *
 * dev listens on 127.0.0.1 unless --ip is given; other arguments go to wrangler.
 * Each bundle gets its own staging directory, so two dev servers on different
 * bundles do not disturb each other.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stageBundle } from './stage.ts';
import { answerHelp } from './usage.ts';

answerHelp(
  import.meta,
  `usage: PROTOATLAS_BUNDLE=<bundle> npm run dev --workspace edge [-- --port 8787 --ip <address>]
       PROTOATLAS_BUNDLE=<bundle> npm run deploy --workspace edge

Stages the bundle as static assets and runs wrangler dev or deploy with the root wrangler.toml.
dev listens on 127.0.0.1 unless --ip is given; other arguments go to wrangler (npx wrangler dev --help).`,
);

const EDGE = resolve(fileURLToPath(new URL('..', import.meta.url)));
const ROOT = resolve(EDGE, '..');

async function main(): Promise<number> {
  const [command, ...args] = process.argv.slice(2);
  if (command !== 'dev' && command !== 'deploy') {
    console.error('usage: node edge/scripts/wrangler.ts dev|deploy [wrangler options]');
    return 2;
  }
  const bundleEnv = process.env.PROTOATLAS_BUNDLE;
  if (!bundleEnv) {
    console.error(
      'PROTOATLAS_BUNDLE must name a model bundle directory (e.g. runs/demo/bundle; `npm run demo` builds one)',
    );
    return 2;
  }
  // npm runs workspace scripts in the workspace: a relative path means the caller's directory.
  const bundle = resolve(process.env.INIT_CWD ?? process.cwd(), bundleEnv);
  const staged =
    command === 'deploy'
      ? join(EDGE, '.assets', 'deploy')
      : join(EDGE, '.assets', `dev-${createHash('sha256').update(bundle).digest('hex').slice(0, 12)}`);
  const r = await stageBundle(bundle, staged);
  console.error(
    `protoatlas: serving ${r.manifest.model.id} ${r.manifest.model.version} from ${bundle} (${r.files} files staged)`,
  );

  const wranglerBin = join(createRequire(import.meta.url).resolve('wrangler/package.json'), '..', 'bin', 'wrangler.js');
  const wranglerArgs = [wranglerBin, command, '--config', join(ROOT, 'wrangler.toml'), '--assets', staged];
  if (command === 'dev') {
    if (!args.some((a) => a === '--ip' || a.startsWith('--ip='))) wranglerArgs.push('--ip', '127.0.0.1');
    // The Worker reads its settings from bindings, not the process: pass PROTOATLAS_* settings
    // (CORS origins, limits) from the environment as variables, over wrangler.toml's [vars].
    for (const [k, v] of Object.entries(process.env)) {
      if (
        k.startsWith('PROTOATLAS_') &&
        k !== 'PROTOATLAS_BUNDLE' &&
        k !== 'PROTOATLAS_QUIET' &&
        v !== undefined &&
        v !== ''
      )
        wranglerArgs.push('--var', `${k}:${v}`);
    }
    wranglerArgs.push('--show-interactive-dev-session=false');
  }
  wranglerArgs.push(...args);
  const child = spawn(process.execPath, wranglerArgs, {
    stdio: 'inherit',
    cwd: ROOT,
    // No network here beyond npm: skip the Request.cf download and telemetry unless asked for.
    env: { CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false', ...process.env },
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
  return new Promise((done) => child.on('exit', (code, signal) => done(code ?? (signal ? 1 : 0))));
}

process.exitCode = await main();
