/**
 * A UDP echo client on the kernel's own stack (node:dgram), run inside the peer namespace by the
 * real-peer tests: `node udp-echo-client.js HOST PORT COUNT SEED MAXSIZE [TIMEOUT_MS] [WINDOW] [AWAIT_LATE]`.
 * The traffic and its checks are udp-echoes.ts's (TIMEOUT_MS: its retryMs, default 1000; WINDOW default
 * 16; AWAIT_LATE 0: do not wait for late echoes). Prints one JSON line: { sent, ok, retries, lost,
 * mismatched, ms }.
 */
import dgram from 'node:dgram';
import { runEchoes } from './udp-echoes.js';

const [host, portS, countS, seedS, maxS, timeoutS, windowS, awaitLateS] = process.argv.slice(2);
const r = await runEchoes(dgram.createSocket('udp4'), host, Number(portS), {
  count: Number(countS),
  seed: Number(seedS),
  maxSize: Number(maxS),
  retryMs: Number(timeoutS ?? 1000),
  window: Number(windowS ?? 16),
  awaitLate: awaitLateS !== '0',
});
process.stdout.write(JSON.stringify(r) + '\n');
