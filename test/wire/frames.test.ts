import t from 'tap';
import { WIRE_ERRORS, WIRE_ERROR_COUNT, isWireError, wireErrorIndex } from '../../servers/wire/errors.js';
import { CAPTURES, FrameParser, inShared, mulberry32 } from './fixtures/helpers.js';

t.test('error codes', async (t) => {
  t.equal(WIRE_ERROR_COUNT, WIRE_ERRORS.length);
  t.equal(new Set(WIRE_ERRORS).size, WIRE_ERRORS.length, 'distinct');
  WIRE_ERRORS.forEach((e, i) => t.equal(wireErrorIndex(e), i));
  t.ok(isWireError('truncated'));
  t.notOk(isWireError('toString'));
  t.notOk(isWireError(3));
  t.equal(structuredClone('bad-option'), 'bad-option', 'plain strings cross worker boundaries');
});

t.test('every captured frame parses through all layers, at any offset', async (t) => {
  const p = new FrameParser();
  for (const [name, frame] of CAPTURES) {
    for (const at of [0, 1, 2, 3]) {
      const b = inShared(frame, at, 8);
      t.equal(p.parse(b, 0, frame.length), null, `${name} at ${at}`);
    }
  }
});

t.test('every truncation of every frame is rejected without throwing', async (t) => {
  const p = new FrameParser();
  let accepted = 0;
  for (const [name, frame] of CAPTURES) {
    for (let len = 0; len < frame.length; len++) {
      let e: string | null = null;
      try {
        e = p.parse(frame, 0, len);
      } catch (err) {
        t.fail(`${name} len ${len} threw ${String(err)}`);
        continue;
      }
      if (e === null) {
        // Every capture is a complete IPv4 packet or ARP message, so the IPv4 total length (or ARP's
        // fixed size) catches every cut frame, even the ping whose ICMP checksum could not.
        t.fail(`${name} len ${len} accepted`);
        accepted++;
      } else if (!isWireError(e)) {
        t.fail(`${name} len ${len}: unknown error ${e}`);
      }
    }
  }
  t.equal(accepted, 0, 'IPv4 total length catches every cut frame');
});

t.test('seeded corruption fuzz: never throws, errors are from the closed set', async (t) => {
  const rng = mulberry32(0xf022);
  const p = new FrameParser();
  const counts = new Uint32Array(WIRE_ERROR_COUNT);
  let ok = 0;
  for (let k = 0; k < 40000; k++) {
    const [, frame] = CAPTURES[rng() % CAPTURES.length];
    const b = frame.slice();
    const flips = 1 + (rng() % 4);
    for (let f = 0; f < flips; f++) b[rng() % b.length] = rng() & 0xff;
    const len = rng() % 8 === 0 ? rng() % (b.length + 1) : b.length;
    let e: string | null;
    try {
      e = p.parse(b, 0, len);
    } catch (err) {
      t.fail(`threw ${String(err)}`);
      break;
    }
    if (e === null) ok++;
    else if (isWireError(e)) counts[wireErrorIndex(e)]++;
    else t.fail(`unknown error ${e}`);
  }
  const seen = Object.fromEntries(WIRE_ERRORS.map((e, i) => [e, counts[i]]).filter(([, n]) => n !== 0));
  t.ok(counts[wireErrorIndex('bad-checksum')] > 0, 'checksums catch most corruption');
  t.ok(ok > 0, 'some corruptions land in fields no check covers (ports, MACs)');
  t.comment(`accepted ${ok}, rejected ${JSON.stringify(seen)}`);
});
