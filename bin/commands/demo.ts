/**
 * `keepnet demo` (what `npm start` runs): two keepnet stacks joined by the shared-memory wire, with
 * traffic all the time (node:http requests over keepnet, downloads and uploads verified by SHA-256,
 * long-lived bulk echo connections, UDP echoes) while faults are injected into every server in turn
 * (crash, exit, hang, poison). The traffic and the campaign are kernel-shim/demo-traffic.ts and
 * kernel-shim/fault-campaign.ts, the same as `keepnet faults`.
 *
 * On a terminal: a live view (bin/demo/live-view.ts) with keys to inject faults by hand; it runs until
 * q or Ctrl-C (or --duration S). Not on a terminal (or with --plain): one line per event, for 20 s
 * unless --duration says otherwise. Then a summary; with --json, one JSON object instead:
 *   { durationS, faults, recovered, connectionsLost, requests: { ok, failed }, bytesVerified,
 *     udp: { sent, echoed, lost }, recoveryMs: { p50, p99, max }, failures }
 */
import { parseArgs } from 'node:util';
import { FaultCampaign, type CampaignResult } from '../../kernel-shim/fault-campaign.js';
import { formatBytes, LiveView } from '../demo/live-view.js';
import { tcpInstancesOption } from './options.js';


export interface DemoSummary {
  durationS: number;
  faults: number;
  recovered: number;
  connectionsLost: number;
  requests: { ok: number; failed: number };
  bytesVerified: number;
  udp: { sent: number; echoed: number; lost: number };
  recoveryMs: { p50: number; p99: number; max: number };
  failures: CampaignResult['failures'];
}

export function demoSummary(r: CampaignResult): DemoSummary {
  return {
    durationS: r.durationS,
    faults: r.injected,
    recovered: r.recovered,
    connectionsLost: r.connectionsLost,
    requests: r.requests,
    bytesVerified: r.bytesVerified,
    udp: r.udp,
    recoveryMs: r.recoveryMs,
    failures: r.failures,
  };
}

export async function demoCommand(args: string[], fail: (msg: string) => never): Promise<void> {
  const { values } = parseOrFail(fail, () => parseArgs({
    args,
    options: {
      duration: { type: 'string' },
      'both-stacks': { type: 'boolean' },
      'tcp-instances': { type: 'string' },
      plain: { type: 'boolean' },
      json: { type: 'boolean' },
    },
  }));
  const json = values.json === true;
  const tcpInstances = tcpInstancesOption(values['tcp-instances'], fail);
  const live = !json && !values.plain && process.stdout.isTTY === true && process.stdin.isTTY === true;
  let durationS: number | undefined;
  if (values.duration !== undefined) {
    durationS = Number(values.duration);
    if (!Number.isFinite(durationS) || durationS <= 0) fail(`--duration must be a positive number of seconds, got '${values.duration}'`);
  } else if (!live) {
    durationS = 20;
  }

  const t0 = performance.now();
  const stamp = (): string => `[${((performance.now() - t0) / 1000).toFixed(3).padStart(8)}s]`;
  let view: LiveView | null = null;
  const say = (line: string): void => {
    if (view) view.event(`${stamp()} ${line}`);
    else if (!json) process.stdout.write(`${stamp()} ${line}\n`);
  };
  const abort = new AbortController();
  const campaign = new FaultCampaign({
    count: Infinity,
    targets: values['both-stacks'] ? 'both' : 'a',
    traffic: {},
    ...(tcpInstances > 1 ? { stack: { tcpInstances } } : {}),
    ...(durationS !== undefined ? { durationMs: durationS * 1000 } : {}),
    signal: abort.signal,
    // On the live view, a fault every second or so, so that a person can follow each one.
    ...(live ? { settleMs: 1000 } : {}),
    onEvent: say,
  });
  const onSigint = (): void => {
    say('interrupted (summary follows)');
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);

  if (!json && !live) {
    process.stdout.write(
      'keepnet crash-recovery demo: two stacks on a shared-memory wire; node:http requests (downloads and\n' +
        'uploads verified by SHA-256), long-lived bulk echo connections and UDP echoes from B to A, while\n' +
        `every server of ${values['both-stacks'] ? 'both stacks' : 'stack A (the server side)'} is crashed, made to exit, hung and poisoned in turn.\n\n`,
    );
  }
  const running = campaign.run();
  if (live) {
    view = new LiveView(campaign, { onQuit: () => abort.abort(), ...(durationS !== undefined ? { durationS } : {}) });
    // The stacks start first (a second or so); the view shows them as they come up.
    await new Promise((r) => setTimeout(r, 50));
    view.start();
  }
  let r: CampaignResult;
  try {
    r = await running;
  } finally {
    view?.stop();
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
  const s = demoSummary(r);
  if (json) {
    process.stdout.write(JSON.stringify(s) + '\n');
    return;
  }
  const failures = s.failures.map((f) => `    at ${(f.atMs / 1000).toFixed(3)} s: ${f.what}: ${f.error}${f.code ? ` (${f.code})` : ''}, ${f.context}\n`).join('');
  process.stdout.write(
    `\nsummary (${s.durationS} s)\n` +
      `  faults injected          ${s.faults}, recovered ${s.recovered}\n` +
      `  recovery (ms)            p50 ${s.recoveryMs.p50}  p99 ${s.recoveryMs.p99}  max ${s.recoveryMs.max}\n` +
      `  poison messages dropped  ${r.poisonDropped}\n` +
      `  false suspicions         ${r.falseSuspicions}\n` +
      `  connections lost         ${s.connectionsLost}\n` +
      `  requests                 ${s.requests.ok} ok, ${s.requests.failed} failed\n` +
      `  bytes verified           ${s.bytesVerified} (${formatBytes(s.bytesVerified)})\n` +
      `  udp datagrams            ${s.udp.sent} sent, ${s.udp.echoed} echoed, ${s.udp.lost} lost (UDP is unreliable: not a failure)\n` +
      `  probes                   ${r.probes.sent} sent, ${r.probes.returned} returned, ${r.probes.lost} lost, ${r.probes.corrupted} corrupted\n` +
      (failures ? `  failures:\n${failures}` : ''),
  );
}

/** util.parseArgs, with its errors (unknown option, missing value) as a usage error: exit 2. */
function parseOrFail<T>(fail: (msg: string) => never, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    return fail((err as Error).message);
  }
}
