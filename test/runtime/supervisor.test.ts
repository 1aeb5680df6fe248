/**
 * The reincarnation supervisor against real worker threads: every cause of death for every server,
 * restarts that keep rings and pool intact, stale generations, poison, backoff, placements.
 * Waits are on the supervisor's events, never on fixed sleeps.
 */
import t from 'tap';

import { Stack } from '../../kernel-shim/stack.js';
import { MSG } from '../../servers/runtime/messages.js';
import { SERVER_NAMES, type ServerName } from '../../servers/runtime/topology.js';

async function withStack<T>(opts: ConstructorParameters<typeof Stack>[0], fn: (s: Stack) => Promise<T>): Promise<T> {
  const s = new Stack(opts);
  await s.start();
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

/** Resolve with the next event `name` whose payload matches. */
function next(s: Stack, name: string, match: (e: any) => boolean, timeoutMs = 10_000): Promise<any> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      s.off(name, on);
      reject(new Error(`no '${name}' event within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (e: any): void => {
      if (!match(e)) return;
      clearTimeout(timer);
      s.off(name, on);
      resolve(e);
    };
    s.on(name, on);
  });
}

async function probeAll(t: { ok(v: unknown, m: string): unknown }, s: Stack, label: string): Promise<void> {
  const rs = await Promise.all(SERVER_NAMES.map((n) => s.probe(n, 700)));
  t.ok(rs.every((r) => r.intact), `${label}: a probe through every server returns intact`);
}

t.test('every cause of death, for every server, is detected, named and repaired', async (t) => {
  await withStack({}, async (s) => {
    await probeAll(t, s, 'before');
    for (const server of SERVER_NAMES) {
      for (const [kind, cause, reason] of [
        ['crash', 'crash', /injected crash/],
        ['exit', 'exit', /process\.exit/],
        ['hang', 'hang', /heartbeat stopped/],
      ] as const) {
        const gen = s.supervisor.incarnation(server);
        const death = next(s, 'death', (e) => e.server === server);
        const recovered = next(s, 'recovered', (e) => e.server === server);
        s.inject(server, kind);
        const d = await death;
        t.equal(d.cause, cause, `${server} ${kind}: cause`);
        t.match(d.reason, reason, `${server} ${kind}: reason`);
        t.equal(d.incarnation, gen);
        const r = await recovered;
        t.equal(r.incarnation, gen + 1, `${server} ${kind}: a new incarnation serves`);
      }
      const st = s.stats().servers[server];
      t.same([st.restarts.crash, st.restarts.exit, st.restarts.hang], [1, 1, 1], `${server}: restarts by cause`);
      t.match(st.lastCrash?.cause, 'hang');
      t.equal(st.state, 'serving');
      t.equal(st.recoveryMs.count, 3);
      t.equal(st.detectionMs.count, 3);
    }
    const crashStack = s.stats().servers.udp;
    t.ok(crashStack.thread >= 0 && crashStack.threadId > 0, 'stats name the thread');
    await probeAll(t, s, 'after');
  });
});

t.test('a crash keeps its stack trace', async (t) => {
  await withStack({}, async (s) => {
    const death = next(s, 'death', (e) => e.server === 'ip');
    s.inject('ip', 'crash');
    const d = await death;
    t.match(d.stack, /at /, 'the stack frames of the throw are reported');
    await s.supervisor.whenServing('ip');
    t.match(s.stats().servers.ip.lastCrash?.stack, /injectFault/, "the frame that threw is named");
  });
});

t.test('restarts keep rings and pool intact: nothing in flight is lost, duplicated or corrupted', async (t) => {
  await withStack({}, async (s) => {
    let running = true;
    let done = 0;
    const failures: string[] = [];
    const loops = SERVER_NAMES.flatMap((server) =>
      Array.from({ length: 8 }, async () => {
        while (running) {
          try {
            const r = await s.probe(server, 1500);
            if (!r.intact) failures.push(`corrupted via ${server}`);
            done++;
          } catch (err) {
            failures.push(String(err));
          }
        }
      }),
    );
    for (let round = 0; round < 3; round++) {
      for (const server of SERVER_NAMES) {
        for (const kind of ['crash', 'exit', 'hang'] as const) {
          const rec = next(s, 'recovered', (e) => e.server === server);
          s.inject(server, kind);
          await rec;
        }
      }
    }
    running = false;
    await Promise.all(loops);
    t.same(failures, [], 'every probe came back, intact');
    t.ok(done > 100, `${done} probes completed across 36 restarts`);
    const st = s.stats();
    t.equal(st.probes.duplicates, 0, 'no replayed record was delivered twice');
    t.equal(st.probes.sent, st.probes.returned);
    t.equal(st.pool.inUse, 0, 'every pool buffer is back');
    t.equal(st.pool.badFree, 0);
  });
});

t.test('messages addressed to a dead incarnation are dropped as stale', async (t) => {
  await withStack({}, async (s) => {
    const old = s.supervisor.incarnation('tcp');
    const rec = next(s, 'recovered', (e) => e.server === 'tcp');
    s.inject('tcp', 'crash');
    await rec;
    // A poison message addressed to the dead incarnation must not reach (and crash) the new one.
    let deaths = 0;
    s.on('death', () => deaths++);
    s.supervisor.postControl('tcp', MSG.POISON, old);
    const deadline = Date.now() + 5000;
    while (s.stats().servers.tcp.counters.staleDropped === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    t.equal(s.stats().servers.tcp.counters.staleDropped, 1, 'counted as stale');
    await probeAll(t, s, 'after the stale message');
    t.equal(deaths, 0, 'and nothing crashed');
  });
});

t.test('a poison message is dropped after 3 attempts and reported; the server serves on', async (t) => {
  await withStack({ poisonAttempts: 3 }, async (s) => {
    for (const server of SERVER_NAMES) {
      let deaths = 0;
      const onDeath = (e: any): void => {
        if (e.server === server) deaths++;
      };
      s.on('death', onDeath);
      const poison = next(s, 'poison', (e) => e.server === server);
      s.inject(server, 'poison');
      const p = await poison;
      t.equal(p.attempts, 3);
      t.match(p.reason, /poison message/);
      await s.supervisor.whenServing(server);
      await probeAll(t, s, `${server} after poison`);
      s.off('death', onDeath);
      t.equal(deaths, 3, `${server}: crashed exactly 3 times on the poison`);
      t.equal(s.stats().servers[server].counters.poisonDropped, 1);
    }
    t.equal(s.stats().poisonDropped, 4);
  });
});

t.test('a server that keeps crashing without progress backs off exponentially and is reported', async (t) => {
  const restart = { immediateRestarts: 2, baseDelayUs: 40_000, maxDelayUs: 160_000, jitter: 0 };
  await withStack({ restart }, async (s) => {
    const server: ServerName = 'udp';
    const delays: number[] = [];
    const loops: any[] = [];
    s.on('crash-loop', (e) => loops.push(e));
    for (let i = 0; i < 5; i++) {
      const death = next(s, 'death', (e) => e.server === server);
      const rec = next(s, 'recovered', (e) => e.server === server);
      s.inject(server, 'crash');
      await death;
      const r = await rec;
      delays.push(r.recoveryMs);
    }
    t.ok(delays[0] < 40 && delays[1] < 40, `first restarts are immediate (${delays.slice(0, 2).map((d) => d.toFixed(1))} ms)`);
    t.ok(delays[2] >= 38, `third waits the base delay (${delays[2].toFixed(1)} ms)`);
    t.ok(delays[3] >= 78, `then twice that (${delays[3].toFixed(1)} ms)`);
    t.ok(delays[4] >= 158 && delays[4] < 400, `capped at 160 ms (${delays[4].toFixed(1)} ms)`);
    t.ok(loops.length >= 3, 'crash looping is reported');
    t.equal(s.stats().servers[server].crashLooping, true);
    // (Timers may fire a fraction of a millisecond early against the central clock: 2 ms of slack.)
    // Progress resets the streak: traffic through udp, then one more crash is restarted at once.
    await probeAll(t, s, 'after backoff');
    const rec = next(s, 'recovered', (e) => e.server === server);
    s.inject(server, 'crash');
    t.ok((await rec).recoveryMs < 40, 'after progress, restarts are immediate again');
  });
});

t.test('shared placement: the same servers on one thread', async (t) => {
  await withStack({ placement: 'shared' }, async (s) => {
    await probeAll(t, s, 'shared');
    const st = s.stats().servers;
    t.equal(new Set(SERVER_NAMES.map((n) => st[n].thread)).size, 1, 'all on one host thread');
    const deaths: string[] = [];
    s.on('death', (e) => deaths.push(e.server));
    const rec = next(s, 'recovered', (e) => e.server === 'tcp');
    s.inject('tcp', 'crash');
    await rec;
    t.same(deaths.sort(), [...SERVER_NAMES].sort(), 'servers sharing a thread share its fate');
    await probeAll(t, s, 'shared, after a crash');
  });
});

t.test('wrong arguments get clear errors', async (t) => {
  t.throws(() => new Stack({ placement: [['driver', 'ip'], ['tcp']] as any }), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => new Stack({ placement: 'sideways' as any }), { code: 'ERR_INVALID_ARG_VALUE' });
  await withStack({}, async (s) => {
    t.throws(() => s.inject('dns' as any, 'crash'), { code: 'ERR_INVALID_ARG_VALUE' });
    t.throws(() => s.inject('ip', 'melt' as any), { code: 'ERR_INVALID_ARG_VALUE' });
    await t.rejects(s.probe('dns' as any), { code: 'ERR_INVALID_ARG_VALUE' });
  });
});


