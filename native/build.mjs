#!/usr/bin/env node
// Builds the keepnet_tap N-API addon (binding.gyp -> build/Release/keepnet_tap.node) with node-gyp,
// offline, against the headers of the running Node. Called from package.json's postinstall.
// It never fails the install: a failed build is reported loudly and the exit code is 0, so the
// TypeScript build still runs (code that needs the addon then throws ERR_KEEPNET_TAP_ADDON_MISSING).
// Set KEEPNET_ADDON_STRICT=1 to make a failed build exit non-zero instead.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const addon = join(root, 'build', 'Release', 'keepnet_tap.node');

// Node's headers: $npm_config_nodedir, else next to the node binary (/usr/bin/node -> /usr/include/node).
function nodedir() {
  const candidates = [process.env.npm_config_nodedir, resolve(process.execPath, '..', '..')].filter(Boolean);
  return candidates.find((d) => existsSync(join(d, 'include', 'node', 'node_api.h')));
}

// node-gyp: npm's bundled one (npm sets npm_config_node_gyp in scripts), a local one, or PATH.
function nodeGyp() {
  const env = process.env.npm_config_node_gyp;
  if (env && existsSync(env)) return [process.execPath, env];
  try {
    const req = createRequire(join(root, 'package.json'));
    return [process.execPath, req.resolve('node-gyp/bin/node-gyp.js')];
  } catch {
    /* not installed locally */
  }
  const npmGyp = resolve(process.execPath, '..', '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (existsSync(npmGyp)) return [process.execPath, npmGyp];
  return ['node-gyp'];
}

function fail(why) {
  const bar = '!'.repeat(78);
  console.error(`\n${bar}\n!!! keepnet: the native TAP addon (keepnet_tap) FAILED to build: ${why}`);
  console.error('!!! TAP devices (real-peer tests, the TAP driver) will not work until it builds.');
  console.error(`!!! Retry: cd ${root} && node native/build.mjs   (needs python3, make, a C compiler, Node headers)`);
  console.error(`${bar}\n`);
  process.exit(process.env.KEEPNET_ADDON_STRICT ? 1 : 0);
}

if (process.platform !== 'linux') fail(`TAP devices are Linux-only (platform ${process.platform})`);
const dir = nodedir();
const [cmd, ...pre] = nodeGyp();
const args = [...pre, 'rebuild', ...(dir ? [`--nodedir=${dir}`] : [])];
console.error(`keepnet: building native addon: ${cmd} ${args.join(' ')}`);
const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], timeout: 300_000 });
if (r.error) fail(r.error.message);
if (r.status !== 0) fail(`node-gyp exited with ${r.status ?? r.signal}`);
if (!existsSync(addon)) fail(`${addon} is missing after the build`);
console.error(`keepnet: native addon built: ${addon}`);
