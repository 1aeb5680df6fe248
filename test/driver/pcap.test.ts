import t from 'tap';
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PcapLink, PcapReader, PcapWriter, pcapFileHeader } from '../../servers/driver/pcap.js';
import { FaultLink } from '../../servers/driver/fault-link.js';
import { mulberry32, randInt } from '../helpers/prng.js';
import { expectedFrame, isFrame, stackLeaks, wirePair, writeFrame } from './link-helpers.js';

const dir = mkdtempSync(join(tmpdir(), `keepnet-pcap-${process.pid}-`));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string): string => join(dir, name);

/** A tool's path if installed, else undefined. */
function which(cmd: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

const HEADER_HEX = 'd4c3b2a1' + '0200' + '0400' + '00000000' + '00000000' + 'ffff0000' + '01000000';

t.test('the file header is byte-exact, even for an empty capture', async (t) => {
  t.equal(pcapFileHeader().toString('hex'), HEADER_HEX);
  const w = PcapWriter.open(file('empty.pcap'));
  t.equal(readFileSync(file('empty.pcap')).toString('hex'), HEADER_HEX, 'written at open');
  w.close();
  w.close();
  t.ok(w.closed);
  t.throws(() => w.write(new Uint8Array(14), 0, 14, 0), { code: 'ERR_PCAP_CLOSED' });
  const r = PcapReader.open(file('empty.pcap'));
  t.same(
    { v: [r.versionMajor, r.versionMinor], zone: r.thiszone, sig: r.sigfigs, snap: r.snaplen, link: r.linktype, be: r.bigEndian, ns: r.nanosecond },
    { v: [2, 4], zone: 0, sig: 0, snap: 65535, link: 1, be: false, ns: false },
  );
  t.equal(r.next(), null);
});

t.test('records are byte-exact: ts from microseconds, incl/orig lengths, bytes', async (t) => {
  const w = PcapWriter.open(file('two.pcap'));
  const a = Uint8Array.from({ length: 20 }, (_, i) => i); // written from offset 3, 14 bytes
  const b = Uint8Array.from({ length: 15 }, (_, i) => 0xf0 + (i & 15));
  w.write(a, 3, 14, 1_234_567.9); // 1 s, 234567 us (fractions dropped)
  w.write(b, 0, 15, 3_000_000_000 * 1e6 + 5); // 3e9 s: beyond i32, still u32
  t.equal(w.records, 2);
  w.close();
  const hex = readFileSync(file('two.pcap')).toString('hex');
  const rec = (sec: number, usec: number, incl: number, orig: number, bytes: Uint8Array): string => {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(sec, 0);
    h.writeUInt32LE(usec, 4);
    h.writeUInt32LE(incl, 8);
    h.writeUInt32LE(orig, 12);
    return h.toString('hex') + Buffer.from(bytes).toString('hex');
  };
  t.equal(
    hex,
    HEADER_HEX +
      '01000000' + '47940300' + '0e000000' + '0e000000' + '030405060708090a0b0c0d0e0f10' +
      rec(3_000_000_000, 5, 15, 15, b),
    'literal bytes',
  );
  t.equal(w.fileBytes, 24 + 16 + 14 + 16 + 15);
});

t.test('snaplen truncates incl_len and keeps orig_len', async (t) => {
  const w = PcapWriter.open(file('snap.pcap'), { snaplen: 100 });
  const f = expectedFrame(200, 5);
  w.write(f, 0, 200, 10);
  w.close();
  const r = PcapReader.open(file('snap.pcap'));
  t.equal(r.snaplen, 100);
  const rec = r.next()!;
  t.same([rec.inclLen, rec.origLen, rec.tsUs], [100, 200, 10]);
  t.same([...rec.data], [...f.subarray(0, 100)]);
});

t.test('round trip through the reader with many batch flushes; tshark and capinfos agree', async (t) => {
  const path = file('many.pcap');
  const w = PcapWriter.open(path, { bufferBytes: 4096 }); // raised to one full record (65551)
  const rand = mulberry32(1234);
  const frames: { len: number; ts: number }[] = [];
  const buf = new Uint8Array(65535 + 8);
  let ts = 1_700_000_000_000_000;
  for (let id = 0; id < 1000; id++) {
    const len = id % 100 === 0 ? 65535 : randInt(rand, 14, 1514);
    ts += randInt(rand, 0, 3000);
    writeFrame(buf, 8, len, id);
    w.write(buf, 8, len, ts);
    frames.push({ len, ts });
  }
  w.close();
  const r = PcapReader.open(path);
  const recs = r.readAll();
  t.equal(recs.length, 1000);
  let bad = 0;
  recs.forEach((rec, id) => {
    const f = frames[id]!;
    if (rec.inclLen !== f.len || rec.origLen !== f.len || rec.tsUs !== f.ts || !isFrame(rec.data, 0, f.len, id)) bad++;
  });
  t.equal(bad, 0, 'every record as written');

  const capinfos = which('capinfos');
  if (capinfos) {
    const out = execFileSync(capinfos, ['-c', '-M', path], { encoding: 'utf8' });
    t.match(out, /Number of packets:\s+1000\b/, 'capinfos counts 1000 packets');
  } else {
    t.comment('capinfos not installed (apt-get install tshark): skipped');
  }
  const tshark = which('tshark');
  if (tshark) {
    const out = execFileSync(tshark, ['-r', path, '-T', 'fields', '-e', 'frame.len', '-e', 'frame.time_epoch'], {
      encoding: 'utf8',
      maxBuffer: 1 << 24,
    });
    const lines = out.trim().split('\n');
    t.equal(lines.length, 1000, 'tshark reads 1000 frames');
    const lens = lines.map((l) => Number(l.split('\t')[0]));
    t.same(lens, frames.map((f) => f.len), 'tshark sees every frame length');
    const first = lines[0]!.split('\t')[1]!;
    t.equal(first.slice(0, 17), (frames[0]!.ts / 1e6).toFixed(6), 'and the microsecond timestamp');
  } else {
    t.comment('tshark not installed (apt-get install tshark): skipped');
  }
});

t.test('the reader: big-endian and nanosecond files, bad magic, truncation', async (t) => {
  const be = Buffer.alloc(24 + 16 + 14);
  be.writeUInt32BE(0xa1b23c4d, 0);
  be.writeUInt16BE(2, 4);
  be.writeUInt16BE(4, 6);
  be.writeUInt32BE(65535, 16);
  be.writeUInt32BE(1, 20);
  be.writeUInt32BE(7, 24);
  be.writeUInt32BE(123_456_789, 28);
  be.writeUInt32BE(14, 32);
  be.writeUInt32BE(60, 36);
  const r = new PcapReader(be);
  t.ok(r.bigEndian && r.nanosecond);
  const rec = r.next()!;
  t.same([rec.tsSec, rec.tsUsec, rec.tsUs, rec.inclLen, rec.origLen], [7, 123_456, 7_123_456, 14, 60]);
  t.equal(r.next(), null);
  t.throws(() => new PcapReader(new Uint8Array(10)), { code: 'ERR_PCAP_TRUNCATED' });
  t.throws(() => new PcapReader(new Uint8Array(24)), { code: 'ERR_PCAP_BAD_MAGIC' });
  writeFileSync(file('cut.pcap'), be.subarray(0, be.length - 1));
  t.throws(() => PcapReader.open(file('cut.pcap')).next(), { code: 'ERR_PCAP_TRUNCATED' });
  writeFileSync(file('cut2.pcap'), be.subarray(0, 30));
  t.throws(() => PcapReader.open(file('cut2.pcap')).next(), { code: 'ERR_PCAP_TRUNCATED' });
});

t.test('PcapLink records both directions of a link, stamped by the clock', async (t) => {
  const [a, b] = wirePair(1500, { batch: 8 });
  const path = file('link.pcap');
  let clock = 5_000_000;
  // Capture what crosses the wire on side a, under a fault link that drops everything a receives.
  const cap = new PcapLink(a.link, { path, clock: { nowUs: () => clock } }); // opens its own writer
  const f = new FaultLink(cap, { seed: 1, rx: { loss: 1 } });
  t.equal(cap.mtu, 1500);
  t.equal(f.poll(0), Infinity);
  for (let i = 0; i < 3; i++) {
    a.tx.len[i] = 60 + i;
    writeFrame(a.tx.bytesAt(i), a.tx.pos(i), 60 + i, i);
  }
  a.tx.len[3] = 5; // invalid: counted by the wire, not captured
  a.tx.count = 4;
  t.equal(f.transmit(a.tx), 4);
  clock += 250;
  b.rx.count = 0;
  t.equal(b.link.receive(b.rx), 3);
  b.rx.len[0] = 100;
  writeFrame(b.rx.bytesAt(0), b.rx.pos(0), 100, 77);
  b.rx.count = 1;
  b.link.transmit(b.rx);
  a.rx.count = 0;
  t.equal(f.receive(a.rx), 0, 'the fault link above the capture dropped it');
  t.equal(f.faults.rx.lost, 1);
  f.close();
  t.ok(cap.writer.closed, 'closing the link closed the capture');
  const recs = PcapReader.open(path).readAll();
  t.same(recs.map((r) => [r.origLen, r.tsUs]), [[60, 5_000_000], [61, 5_000_000], [62, 5_000_000], [100, 5_000_250]]);
  t.ok(isFrame(recs[3]!.data, 0, 100, 77), 'the received frame was captured below the fault');
  t.equal(stackLeaks(a) + stackLeaks(b), 0);
});

t.test('PcapLink without a clock stamps with the poll time; rx/tx selectable', async (t) => {
  const [a, b] = wirePair(1500, { batch: 4 });
  const path = file('poll.pcap');
  const cap = new PcapLink(b.link, PcapWriter.open(path), { tx: false, closeWriter: false });
  cap.poll(42);
  a.tx.len[0] = 64;
  writeFrame(a.tx.bytesAt(0), a.tx.pos(0), 64, 1);
  a.tx.count = 1;
  a.link.transmit(a.tx);
  b.rx.count = 0;
  t.equal(cap.receive(b.rx), 1);
  b.rx.count = 1;
  t.equal(cap.transmit(b.rx), 1, 'transmit passes through, not recorded');
  cap.close();
  t.notOk(cap.writer.closed, 'closeWriter: false keeps the writer open (flushed)');
  const recs = PcapReader.open(path).readAll();
  t.same(recs.map((r) => [r.origLen, r.tsUs]), [[64, 42]]);
  cap.writer.close();
  t.equal(stackLeaks(a) + stackLeaks(b), 0);
});

t.test('append: a restarted driver continues the capture, cutting a torn last record', async (t) => {
  const path = file('append.pcap');
  const fresh = PcapWriter.open(path, { append: true }); // missing file: created
  fresh.write(expectedFrame(60, 1), 0, 60, 1);
  fresh.write(expectedFrame(70, 2), 0, 70, 2);
  fresh.close();
  // A crash in the middle of a batch write: half a record at the end.
  appendFileSync(path, Buffer.from([9, 0, 0, 0, 0, 0, 0, 0, 200, 0, 0, 0, 200, 0, 0, 0, 1, 2, 3]));
  const again = PcapWriter.open(path, { append: true });
  again.write(expectedFrame(80, 3), 0, 80, 3);
  again.close();
  const recs = PcapReader.open(path).readAll();
  t.same(recs.map((r) => [r.origLen, r.tsUs]), [[60, 1], [70, 2], [80, 3]], 'old records kept, torn one cut, new one appended');
  t.ok(recs.every((r, i) => isFrame(r.data, 0, r.inclLen, i + 1)));
  writeFileSync(file('empty-append.pcap'), '');
  PcapWriter.open(file('empty-append.pcap'), { append: true }).close();
  t.equal(readFileSync(file('empty-append.pcap')).toString('hex'), HEADER_HEX, 'an empty file gets a header');
  t.throws(() => PcapWriter.open(path, { append: true, snaplen: 100 }), { code: 'ERR_PCAP_INCOMPATIBLE' });
  writeFileSync(file('junk.pcap'), 'not a pcap file at all, no');
  t.throws(() => PcapWriter.open(file('junk.pcap'), { append: true }), { code: 'ERR_PCAP_INCOMPATIBLE' });
  PcapWriter.open(path).close();
  t.equal(readFileSync(path).toString('hex'), HEADER_HEX, 'without append the file is truncated');
  const capinfos = which('capinfos');
  if (capinfos) {
    const p2 = file('append2.pcap');
    const w = PcapWriter.open(p2);
    w.write(expectedFrame(60, 1), 0, 60, 1);
    w.close();
    const w2 = PcapWriter.open(p2, { append: true });
    w2.write(expectedFrame(60, 2), 0, 60, 2);
    w2.close();
    t.match(execFileSync(capinfos, ['-c', '-M', p2], { encoding: 'utf8' }), /Number of packets:\s+2\b/, 'capinfos reads the appended file');
  }
});
