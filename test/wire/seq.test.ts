import t from 'tap';
import { seqAdd, seqDiff, seqGe, seqGt, seqInWindow, seqLe, seqLt, seqMax, seqMin, seqSub } from '../../servers/wire/seq.js';
import { mulberry32 } from './fixtures/helpers.js';

t.test('comparisons across the wrap', async (t) => {
  const a = 0xffffff00;
  const b = 0x00000010; // 0x110 after a
  t.ok(seqLt(a, b));
  t.ok(seqLe(a, b));
  t.ok(seqGt(b, a));
  t.ok(seqGe(b, a));
  t.notOk(seqLt(b, a));
  t.notOk(seqGt(a, b));
  t.ok(seqLe(a, a) && seqGe(a, a) && !seqLt(a, a) && !seqGt(a, a));
  t.equal(seqDiff(b, a), 0x110);
  t.equal(seqDiff(a, b), -0x110);
  t.equal(seqMax(a, b), b);
  t.equal(seqMin(a, b), a);
  t.equal(seqMax(b, a), b);
  t.equal(seqMin(b, a), a);
});

t.test('add and sub stay uint32', async (t) => {
  t.equal(seqAdd(0xffffffff, 1), 0);
  t.equal(seqAdd(0xfffffff0, 0x20), 0x10);
  t.equal(seqAdd(5, -10), 0xfffffffb);
  t.equal(seqSub(5, 10), 0xfffffffb);
  t.equal(seqSub(0x10, 0x20), 0xfffffff0);
  t.equal(seqAdd(0x7fffffff, 1), 0x80000000);
});

t.test('window membership', async (t) => {
  t.ok(seqInWindow(0xfffffffe, 0xfffffff0, 0x10));
  t.ok(seqInWindow(0x5, 0xfffffff0, 0x10));
  t.notOk(seqInWindow(0x10, 0xfffffff0, 0x10), 'right edge excluded');
  t.ok(seqInWindow(0xfffffff0, 0xfffffff0, 0x10), 'left edge included');
  t.notOk(seqInWindow(7, 7, 7), 'empty window');
});

t.test('random pairs agree with BigInt modular arithmetic', async (t) => {
  const rng = mulberry32(793);
  let bad = 0;
  for (let k = 0; k < 20000; k++) {
    const a = rng();
    const d = (rng() % 0x7fffffff) + 1; // 1 .. 2^31-1
    const b = seqAdd(a, d); // b is d after a
    if (!seqLt(a, b) || !seqGt(b, a) || seqLe(b, a) || seqGe(a, b)) bad++;
    if (seqDiff(b, a) !== d || seqSub(b, d) !== a) bad++;
    if (seqMax(a, b) !== b || seqMin(a, b) !== a) bad++;
    if (Number((BigInt(a) + BigInt(d)) % 2n ** 32n) !== b) bad++;
  }
  t.equal(bad, 0);
});
