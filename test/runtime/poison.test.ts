// PoisonTracker: a record that crashes a server maxAttempts times in a row is dropped and reported.
import t from 'tap';
import { PoisonTracker, recordKey } from '../../servers/runtime/poison.js';

t.test('drop after maxAttempts crashes on the same record', async (t) => {
  const p = new PoisonTracker();
  const k = recordKey(2, 1041);
  t.equal(k, '2:1041');
  t.equal(p.onCrash('tcp', k, 'ERR_A'), 'retry');
  t.equal(p.attempts('tcp'), 1);
  t.equal(p.onCrash('tcp', k, 'ERR_B'), 'retry');
  t.equal(p.suspectKey('tcp'), k);
  t.equal(p.onCrash('tcp', k), 'drop', 'third crash on the same record');
  t.equal(p.attempts('tcp'), 0, 'entry cleared after the drop');
  t.equal(p.suspectKey('tcp'), null);
  t.equal(p.droppedTotal, 1);
  t.same(p.dropped, [{ serverId: 'tcp', key: k, attempts: 3, reasons: ['ERR_A', 'ERR_B', ''], ordinal: 1 }]);
  // the same record again (the runtime failed to skip it): counted afresh
  t.equal(p.onCrash('tcp', k), 'retry');
});

t.test('progress resets the count', async (t) => {
  const p = new PoisonTracker({ maxAttempts: 3 });
  p.onCrash('ip', '0:7');
  p.onCrash('ip', '0:7');
  p.onProgress('ip');
  t.equal(p.attempts('ip'), 0);
  t.equal(p.onCrash('ip', '0:7'), 'retry', 'innocent after progress: starts over');
  t.equal(p.onCrash('ip', '0:7'), 'retry');
  t.equal(p.onCrash('ip', '0:7'), 'drop');
});

t.test('a different record replaces the suspect; null neither counts nor clears', async (t) => {
  const p = new PoisonTracker();
  p.onCrash('udp', '1:1');
  p.onCrash('udp', '1:1');
  t.equal(p.onCrash('udp', '1:2'), 'retry', 'another record: 1:1 was committed');
  t.equal(p.attempts('udp'), 1);
  t.equal(p.suspectKey('udp'), '1:2');
  t.equal(p.onCrash('udp', null), 'retry', 'crash outside any record');
  t.equal(p.attempts('udp'), 1, 'null did not count');
  t.equal(p.onCrash('udp', '1:2'), 'retry');
  t.equal(p.onCrash('udp', null), 'retry');
  t.equal(p.onCrash('udp', '1:2'), 'drop', 'null did not clear either');
});

t.test('servers are tracked independently', async (t) => {
  const p = new PoisonTracker({ maxAttempts: 2 });
  p.onCrash('a', 'x');
  p.onCrash(7, 'x');
  t.equal(p.onCrash('b', 'x'), 'retry');
  t.equal(p.onCrash('a', 'x'), 'drop');
  t.equal(p.attempts(7), 1);
  p.forget(7);
  t.equal(p.attempts(7), 0);
  t.equal(p.attempts('b'), 1);
});

t.test('maxAttempts 1 drops at once; reports are bounded', async (t) => {
  const p = new PoisonTracker({ maxAttempts: 1, maxReports: 3 });
  for (let i = 0; i < 10; i++) t.equal(p.onCrash('s', recordKey(0, i), `E${i}`), 'drop');
  t.equal(p.droppedTotal, 10);
  t.same(
    p.dropped.map((r) => [r.key, r.ordinal, r.reasons]),
    [
      ['0:7', 8, ['E7']],
      ['0:8', 9, ['E8']],
      ['0:9', 10, ['E9']],
    ],
    'the latest three, oldest first',
  );
  p.reset();
  t.equal(p.droppedTotal, 0);
  t.same(p.dropped, []);
  const none = new PoisonTracker({ maxAttempts: 1, maxReports: 0 });
  none.onCrash('s', 'k');
  t.equal(none.droppedTotal, 1);
  t.same(none.dropped, []);
});

t.test('options are validated', async (t) => {
  t.throws(() => new PoisonTracker({ maxAttempts: 0 }), RangeError);
  t.throws(() => new PoisonTracker({ maxAttempts: 1.5 }), RangeError);
  t.throws(() => new PoisonTracker({ maxReports: -1 }), RangeError);
});
