/**
 * Soak load over loopback on one stack: `churn` connections opened, echoed through and closed
 * (`parallel` at a time), and `held` connections kept open for `holdMs` with traffic on each. Used by
 * test/hardening/soak.test.ts (short) and bench/soak.ts (10,000 held for 10 minutes; 1,000,000 churned).
 */
import type { Stack } from '../../kernel-shim/stack.js';
import { restarts, tcpUsed } from './fuzz.js';

export interface SoakOptions {
  churn: number;
  parallel: number;
  held: number;
  holdMs: number;
  log?: (l: string) => void;
}

export interface SoakReport {
  churned: number;
  churnFailed: number;
  churnSeconds: number;
  held: number;
  heldFailed: number;
  heldEchoes: number;
  pool: { baseline: number; after: number };
  table: { baseline: number; peak: number; after: number };
  restarts: Record<string, number>;
}

function echoOnce(stack: Stack, port: number, msg: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    const c = stack.net.connect(port, '127.0.0.1', () => c.end(msg));
    c.on('data', (d: Buffer) => parts.push(d));
    c.on('end', () => resolve(Buffer.concat(parts).equals(msg)));
    c.on('error', () => resolve(false));
  });
}

export async function runSoak(stack: Stack, o: SoakOptions): Promise<SoakReport> {
  const log = o.log ?? (() => {});
  const server = stack.net.createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', 4096, () => r()));
  const port = (server.address() as { port: number }).port;
  const poolBase = stack.stats().pool.inUse;
  const tableBase = tcpUsed(stack);
  let peak = tableBase;
  // Churn.
  const t0 = Date.now();
  let next = 0;
  let failed = 0;
  let lastLog = t0;
  await Promise.all(
    Array.from({ length: o.parallel }, async () => {
      while (next < o.churn) {
        const i = next++;
        if (!(await echoOnce(stack, port, Buffer.from(`churn ${i}`)))) failed++;
        if (Date.now() - lastLog > 5000) {
          lastLog = Date.now();
          peak = Math.max(peak, tcpUsed(stack));
          log(`${i} connections churned, ${failed} failed, table ${tcpUsed(stack)}`);
        }
      }
    }),
  );
  const churnSeconds = (Date.now() - t0) / 1000;
  // Held connections with traffic.
  const socks: ReturnType<Stack['net']['connect']>[] = [];
  let heldFailed = 0;
  let echoes = 0;
  for (let i = 0; i < o.held; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = stack.net.connect(port, '127.0.0.1', () => resolve(true));
      c.on('error', () => resolve(false));
      c.on('data', () => echoes++);
      socks.push(c);
    });
    if (!ok) heldFailed++;
  }
  peak = Math.max(peak, tcpUsed(stack));
  const end = Date.now() + o.holdMs;
  let round = 0;
  while (Date.now() < end) {
    const before = echoes;
    for (const s of socks) if (!s.destroyed) s.write(`round ${round}\n`);
    round++;
    const deadline = Date.now() + 10_000;
    while (echoes - before < socks.length - heldFailed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    if (Date.now() - lastLog > 5000) {
      lastLog = Date.now();
      log(`held ${socks.length}: round ${round}, ${echoes} echoes, table ${tcpUsed(stack)}, pool ${stack.stats().pool.inUse}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await Promise.all(
    socks.map(
      (s) =>
        new Promise<void>((r) => {
          if (s.destroyed) return r();
          s.on('close', () => r());
          s.end();
          setTimeout(r, 5000);
        }),
    ),
  );
  await new Promise<void>((r) => server.close(() => r()));
  // The pool must return to its baseline; the table to its baseline less the listener, apart from
  // TIME_WAIT connections (released by their timer or recycled when the table fills).
  const t1 = Date.now();
  while (stack.stats().pool.inUse > poolBase && Date.now() - t1 < 10_000) await new Promise((r) => setTimeout(r, 50));
  return {
    churned: o.churn,
    churnFailed: failed,
    churnSeconds,
    held: o.held,
    heldFailed,
    heldEchoes: echoes,
    pool: { baseline: poolBase, after: stack.stats().pool.inUse },
    table: { baseline: tableBase, peak, after: tcpUsed(stack) },
    restarts: restarts(stack),
  };
}

/** Connections in TIME_WAIT or otherwise still in the table, by state name (for reports). */
export function tableStates(stack: Stack): number {
  return tcpUsed(stack);
}
