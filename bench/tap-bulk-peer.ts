/**
 * A bulk TCP peer for the kernel's side of a TAP (`ip netns exec NS node tap-bulk-peer.js ...`), on node:net.
 * Prints one JSON line: { bytes, sha256, ms } (ms from the first to the last byte).
 *
 *   sink PORT [COUNT [raw]]        accept COUNT connections (default 1) one after the other; for each,
 *                                  read to the end and print what arrived. Prints {listening:true} first.
 *   source HOST PORT BYTES [SEC [raw]]  connect and write BYTES deterministic bytes (or, with SEC, as many
 *                                  as fit in SEC seconds), then end.
 * `raw` (benchmarks): no pattern and no SHA-256, only counting; hashing and generating the pattern cost
 * this process 3-5 ns per byte, which capped the kernel's side near 200-300 MB/s.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';

const CHUNK = 256 * 1024;

/** Deterministic pattern: byte i of the stream is (i * 7 + (i >>> 11)) & 255. */
export function pattern(start: number, into: Buffer): void {
  for (let k = 0; k < into.length; k++) {
    const i = start + k;
    into[k] = (i * 7 + (i >>> 11)) & 255;
  }
}

function sink(port: number, count: number, raw: boolean): void {
  let left = count;
  const server = net.createServer((s) => {
    const h = createHash('sha256');
    let bytes = 0;
    let t0 = 0;
    s.on('data', (d: Buffer) => {
      if (bytes === 0) t0 = performance.now();
      if (!raw) h.update(d);
      bytes += d.length;
    });
    s.on('end', () => {
      console.log(JSON.stringify({ bytes, ...(raw ? {} : { sha256: h.digest('hex') }), ms: performance.now() - t0 }));
      s.end();
      if (--left === 0) server.close();
    });
    s.on('error', (e) => {
      console.log(JSON.stringify({ bytes, error: String((e as NodeJS.ErrnoException).code ?? e) }));
      if (--left === 0) server.close();
    });
  });
  server.listen(port, () => console.log(JSON.stringify({ listening: true })));
}

function source(host: string, port: number, total: number, seconds: number, raw: boolean): void {
  const h = createHash('sha256');
  const bufs = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
  let sent = 0;
  let flip = 0;
  const t0 = performance.now();
  const deadline = seconds > 0 ? t0 + seconds * 1000 : Infinity;
  const s = net.connect(port, host, () => {
    const pump = (): void => {
      while (sent < total && performance.now() < deadline) {
        const n = Math.min(CHUNK, total - sent);
        const b = bufs[flip ^= 1]!;
        if (!raw) pattern(sent, b);
        const c = n === CHUNK ? b : b.subarray(0, n);
        if (!raw) h.update(c);
        sent += n;
        // A raw source writes the same buffer again (never modified: no copy needed).
        if (!s.write(raw ? c : Buffer.from(c))) {
          s.once('drain', pump);
          return;
        }
      }
      s.end();
    };
    pump();
  });
  s.on('close', () => console.log(JSON.stringify({ bytes: sent, ...(raw ? {} : { sha256: h.digest('hex') }), ms: performance.now() - t0 })));
  s.on('error', (e) => console.log(JSON.stringify({ bytes: sent, error: String((e as NodeJS.ErrnoException).code ?? e) })));
  s.resume();
}

const [mode, a, b, c, d, e] = process.argv.slice(2);
if (mode === undefined) {
  // imported (pattern()), not run
} else if (mode === 'sink') sink(Number(a), Number(b ?? 1), c === 'raw');
else if (mode === 'source') source(String(a), Number(b), Number(c), Number(d ?? 0), e === 'raw');
else {
  console.error('usage: tap-bulk-peer sink PORT [COUNT [raw]] | source HOST PORT BYTES [SEC [raw]]');
  process.exit(2);
}
