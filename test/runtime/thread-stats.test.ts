/**
 * ThreadStats: schedstat read through a descriptor kept per watched key, re-opened when the key's thread
 * changes or its thread is gone, and never more descriptors than keys. Against a fake task directory
 * (exact contents, malformed ones) and against this process's real threads.
 */
import t from 'tap';
import { mkdtempSync, mkdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { ThreadStats, parseSchedstat } from '../../servers/runtime/thread-stats.js';

t.test('parseSchedstat: the first two fields, or null for anything else', async (t) => {
  t.same(parseSchedstat('27521477 11482 2\n'), { runNs: 27521477, waitNs: 11482 });
  t.same(parseSchedstat('0 0 0'), { runNs: 0, waitNs: 0 });
  for (const bad of ['', '\n', '12', '12 ', 'a b c', '1 -2 3', 'NaN 1 1', ' 1 2 3']) t.equal(parseSchedstat(bad), null, JSON.stringify(bad));
});

t.test('a fake task directory: fresh contents at every read, one descriptor per key', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'keepnet-tasks-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  for (const tid of [101, 102]) {
    mkdirSync(join(root, String(tid)));
    writeFileSync(join(root, String(tid), 'schedstat'), `${tid}000 5 1\n`);
    writeFileSync(join(root, String(tid), 'stat'), `${tid} (node (worker)) S 1 2 3\n`);
  }
  const ts = new ThreadStats(root);
  t.same(ts.schedstat(0, 101), { runNs: 101000, waitNs: 5 });
  t.equal(ts.open, 1);
  // Rewritten in place (same file, as /proc regenerates it): the kept descriptor reads the new text.
  writeFileSync(join(root, '101', 'schedstat'), '999 6 1\n');
  t.same(ts.schedstat(0, 101), { runNs: 999, waitNs: 6 });
  t.equal(ts.open, 1, 'the same descriptor');
  // The key's thread changes: the old descriptor is closed, not kept alongside.
  t.same(ts.schedstat(0, 102), { runNs: 102000, waitNs: 5 });
  t.equal(ts.open, 1);
  t.same(ts.schedstat(1, 101), { runNs: 999, waitNs: 6 });
  t.equal(ts.open, 2);
  // Malformed text: null, the descriptor still kept (the thread is there).
  writeFileSync(join(root, '102', 'schedstat'), 'garbage\n');
  t.equal(ts.schedstat(0, 102), null);
  // No such thread, bad ids: null, and nothing held for them.
  t.equal(ts.schedstat(2, 555), null);
  for (const bad of [0, -1, 1.5, NaN]) t.equal(ts.schedstat(3, bad), null, `tid ${bad}`);
  t.equal(ts.open, 2);
  t.equal(ts.state(101), 'S', 'the letter after the last parenthesis, whatever the name holds');
  t.equal(ts.state(555), '');
  ts.close();
  t.equal(ts.open, 0);
});

/** The OS thread id of the calling thread (Linux). */
const tidHere = (): number => Number(readlinkSync('/proc/thread-self').split('/').pop());

t.test('real threads: run time grows, a dead thread reads as null and lets go of its descriptor', { skip: process.platform !== 'linux' }, async (t) => {
  const ts = new ThreadStats();
  t.teardown(() => ts.close());
  const me = tidHere();
  const a = ts.schedstat(0, me);
  t.ok(a && a.runNs > 0, 'this thread has run');
  // Spin for 30 ms of real time: the thread runs for some of it, however busy the machine.
  const until = performance.now() + 30;
  while (performance.now() < until) {
    // spin
  }
  const b = ts.schedstat(0, me);
  t.ok(a && b && b.runNs - a.runNs >= 1_000_000, `ran ${a && b ? (b.runNs - a.runNs) / 1e6 : '?'} ms more`);

  const w = new Worker(
    "const { parentPort } = require('node:worker_threads'); parentPort.postMessage(Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop())); setInterval(() => {}, 1000);",
    { eval: true },
  );
  const tid = await new Promise<number>((resolve) => w.once('message', resolve));
  t.ok(ts.schedstat(1, tid), 'the worker reads');
  t.equal(ts.open, 2);
  await w.terminate();
  t.equal(ts.schedstat(1, tid), null, 'gone');
  t.equal(ts.open, 1, 'its descriptor closed');
});
