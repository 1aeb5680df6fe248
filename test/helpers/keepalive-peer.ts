/**
 * A kernel-side HTTP client for the hostile-traffic tests (`ip netns exec K node keepalive-peer.js ...`):
 * one keep-alive connection that keeps asking for verified responses, and fresh connections made at an
 * interval, until a stop file appears (or a time limit passes). Uses the kernel's TCP through node:http.
 *
 *   node keepalive-peer.js BASE_URL STOP_FILE [BYTES=20000] [NEW_EVERY_MS=250] [PAUSE_MS=20] [MAX_MS=120000]
 *
 * Prints one JSON line per event on stdout:
 *   {"event":"ready","localPort":P}        after the first verified response on the keep-alive connection
 *   {"event":"progress",...}               every second: counts so far
 *   {"event":"done",...}                   at the end: keepAlive {ok, bad, sockets, localPorts, maxMs},
 *                                          fresh {ok, bad, maxMs}, errors by code
 * A keep-alive request that fails, or a second socket under the keep-alive agent, is what the tests
 * look for: the connection was reset or lost.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import http from 'node:http';

const [base, stopFile, bytesArg, newEveryArg, pauseArg, maxArg] = process.argv.slice(2);
if (!base || !stopFile) {
  console.error('usage: keepalive-peer BASE_URL STOP_FILE [BYTES] [NEW_EVERY_MS] [PAUSE_MS] [MAX_MS]');
  process.exit(2);
}
const BYTES = Number(bytesArg ?? 20000);
const NEW_EVERY_MS = Number(newEveryArg ?? 250);
const PAUSE_MS = Number(pauseArg ?? 20);
const MAX_MS = Number(maxArg ?? 120_000);
const REQUEST_TIMEOUT_MS = 30_000;

const keep = new http.Agent({ keepAlive: true, maxSockets: 1 });
const fresh = new http.Agent({ keepAlive: false, maxSockets: Infinity });
const localPorts = new Set<number>();
let sockets = 0;
keep.on('free', () => {});
const errors: Record<string, number> = {};
const t0 = Date.now();
const stats = {
  keepAlive: { ok: 0, bad: 0, sockets: 0, localPorts: [] as number[], maxMs: 0 },
  fresh: { ok: 0, bad: 0, maxMs: 0, inFlight: 0 },
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const stopped = (): boolean => existsSync(stopFile) || Date.now() - t0 > MAX_MS;

function get(agent: http.Agent, path: string, onSocket?: (s: import('node:net').Socket) => void): Promise<{ ok: boolean; ms: number; error?: string }> {
  const start = Date.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (ok: boolean, error?: string): void => {
      if (done) return;
      done = true;
      resolve({ ok, ms: Date.now() - start, error });
    };
    const req = http.get(`${base}${path}`, { agent }, (res) => {
      const h = createHash('sha256');
      let n = 0;
      res.on('data', (d: Buffer) => {
        h.update(d);
        n += d.length;
      });
      res.on('end', () => finish(res.statusCode === 200 && h.digest('hex') === res.headers['x-content-sha256'], `bad body (${n} bytes)`));
      res.on('error', (e) => finish(false, String((e as NodeJS.ErrnoException).code ?? e)));
    });
    req.on('socket', (s) => onSocket?.(s));
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(Object.assign(new Error('request timeout'), { code: 'ETIMEOUT' })));
    req.on('error', (e) => finish(false, String((e as NodeJS.ErrnoException).code ?? e)));
  });
}

function note(r: { ok: boolean; error?: string }): void {
  if (!r.ok && r.error) errors[r.error] = (errors[r.error] ?? 0) + 1;
}

const seen = new WeakSet<object>();
async function keepAliveLoop(): Promise<void> {
  let ready = false;
  while (!stopped()) {
    const r = await get(keep, `/bytes/${BYTES}`, (s) => {
      if (seen.has(s)) return;
      seen.add(s);
      sockets++;
      const record = (): void => {
        if (s.localPort !== undefined) localPorts.add(s.localPort);
      };
      if (s.localPort !== undefined) record();
      else s.once('connect', record);
    });
    note(r);
    if (r.ok) stats.keepAlive.ok++;
    else stats.keepAlive.bad++;
    stats.keepAlive.maxMs = Math.max(stats.keepAlive.maxMs, r.ms);
    if (r.ok && !ready) {
      ready = true;
      console.log(JSON.stringify({ event: 'ready', localPort: [...localPorts][0] }));
    }
    await sleep(PAUSE_MS);
  }
}

async function freshLoop(): Promise<void> {
  const pending: Promise<void>[] = [];
  while (!stopped()) {
    stats.fresh.inFlight++;
    pending.push(
      get(fresh, '/bytes/1000').then((r) => {
        stats.fresh.inFlight--;
        note(r);
        if (r.ok) stats.fresh.ok++;
        else stats.fresh.bad++;
        stats.fresh.maxMs = Math.max(stats.fresh.maxMs, r.ms);
      }),
    );
    await sleep(NEW_EVERY_MS);
  }
  await Promise.all(pending);
}

const snapshot = (): Record<string, unknown> => ({
  ms: Date.now() - t0,
  keepAlive: { ...stats.keepAlive, sockets, localPorts: [...localPorts] },
  fresh: { ...stats.fresh },
  errors,
});

const progress = setInterval(() => console.log(JSON.stringify({ event: 'progress', ...snapshot() })), 1000);
await Promise.all([keepAliveLoop(), freshLoop()]);
clearInterval(progress);
keep.destroy();
console.log(JSON.stringify({ event: 'done', ...snapshot() }));
