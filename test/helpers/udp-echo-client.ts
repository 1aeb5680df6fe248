/**
 * A UDP echo client on the kernel's own stack (node:dgram), run inside the peer namespace by the
 * real-peer tests: `node udp-echo-client.js HOST PORT COUNT SEED MAXSIZE [TIMEOUT_MS] [WINDOW] [AWAIT_LATE]`.
 * Datagram i carries its index and bytes from a seeded generator; every echo must come back
 * byte-exact. A datagram with no echo after TIMEOUT_MS is sent again (counted as retries). Once every
 * datagram has its echo, the client waits up to 10 s for the echoes of resends and of slow originals
 * (unless AWAIT_LATE is 0: a link that drops on purpose), and `lost` counts the sends that never got
 * one: unlike retries, it does not depend on how loaded the machine is. Prints one JSON line:
 * { sent, ok, retries, lost, mismatched, ms }.
 */
import dgram from 'node:dgram';
import { mulberry32, randInt } from './prng.js';

const [host, portS, countS, seedS, maxS, timeoutS, windowS, awaitLateS] = process.argv.slice(2);
const port = Number(portS);
const count = Number(countS);
const maxSize = Number(maxS);
const timeoutMs = Number(timeoutS ?? 1000);
const window = Number(windowS ?? 16);
const awaitLate = awaitLateS !== '0';
const rand = mulberry32(Number(seedS));

const payloads: Buffer[] = [];
for (let i = 0; i < count; i++) {
  const len = randInt(rand, 4, maxSize);
  const b = Buffer.alloc(len);
  b.writeUInt32BE(i, 0);
  for (let k = 4; k < len; k++) b[k] = randInt(rand, 0, 255);
  payloads.push(b);
}

const sock = dgram.createSocket('udp4');
const done = new Uint8Array(count);
const timers = new Map<number, NodeJS.Timeout>();
let next = 0;
let ok = 0;
let retries = 0;
let mismatched = 0;
let sent = 0;
let received = 0;
const t0 = Date.now();

function send(i: number): void {
  sent++;
  sock.send(payloads[i], port, host);
  timers.set(
    i,
    setTimeout(() => {
      if (done[i]) return;
      retries++;
      send(i);
    }, timeoutMs),
  );
}

function pump(): void {
  while (next < count && timers.size < window) send(next++);
  if (ok === count) finish();
}

let finishing = false;
function finish(): void {
  if (finishing) return;
  finishing = true;
  for (const t of timers.values()) clearTimeout(t);
  const ms = Date.now() - t0;
  const end = Date.now() + 10_000;
  const check = (): void => {
    if (awaitLate && received < sent && Date.now() < end) return void setTimeout(check, 20);
    process.stdout.write(JSON.stringify({ sent, ok, retries, lost: Math.max(0, sent - received), mismatched, ms }) + '\n');
    sock.close();
  };
  check();
}

sock.on('message', (msg) => {
  if (msg.length < 4) return void mismatched++;
  const i = msg.readUInt32BE(0);
  if (i >= count) return;
  if (!msg.equals(payloads[i])) {
    mismatched++;
    return;
  }
  received++;
  if (done[i]) return;
  done[i] = 1;
  ok++;
  clearTimeout(timers.get(i));
  timers.delete(i);
  pump();
});
sock.bind(0, () => pump());
