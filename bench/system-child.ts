/**
 * One system of `keepnet bench bulk|rr|crr|all` in a process of its own: the kernel's TCP, or a pair of
 * keepnet stacks in one placement. bench/net.ts forks one per system and placement and alternates its
 * rounds between them; both ends of each measurement live in the child, as they would in one service.
 *
 * Why a process each: whatever else shares a process slows what is measured there, and not evenly.
 *   - Idle keepnet stacks (threads, supervisors) slowed the kernel's rr by about 9% when they shared its
 *     process (six alternated runs each on this machine: 85-100k against 95-112k transactions/s).
 *   - An idle pair of dedicated stacks slowed a shared pair's bulk by about 30% (950 against 1350-1500
 *     MB/s): the main thread's garbage collector ran 100-176 mark-compacts in 7 s instead of 8, their
 *     concurrent marking threads competing with the stacks for the two cores.
 *
 * Protocol (IPC): argv[2] is the JSON of a SystemSpec. The child says { ready: true } once its system is
 * open ({ ready: false, error } if it could not be). The parent sends { id, test, seconds }; the child
 * answers { id, row } or { id, error }. On disconnect it closes its stacks and exits (within 5 s).
 */
import { closeSystem, measureOn, NET_TESTS, openSystem, type NetTest, type SystemSpec } from './net.js';

interface Ask {
  id: number;
  test: NetTest;
  seconds: number;
}

const answer = (m: unknown): void => {
  // After the parent disconnected there is no one to answer (and send would throw).
  if (process.connected) process.send?.(m, () => {});
};

if (process.send) {
  const spec = JSON.parse(process.argv[2] ?? '{}') as SystemSpec;
  const system = openSystem(spec);
  // Started (or not): the parent measures nothing until every system has said so.
  system.then(
    () => answer({ ready: true }),
    (err: unknown) => answer({ ready: false, error: err instanceof Error ? err.message : String(err) }),
  );
  let queue: Promise<unknown> = system;
  process.on('message', (m: Ask) => {
    const ok = NET_TESTS.includes(m?.test) && Number.isFinite(m?.seconds) && m.seconds > 0;
    // One measurement at a time, in the order asked; a failure (to start, or to measure) is answered.
    const done = queue
      .then(() => (ok ? system.then((s) => measureOn(s, m.test, m.seconds)).then((row) => ({ id: m.id, row })) : Promise.reject(new Error(`bad request ${JSON.stringify(m)}`))))
      .catch((err: unknown) => ({ id: m?.id, error: err instanceof Error ? err.message : String(err) }));
    queue = done;
    void done.then(answer);
  });
  process.on('disconnect', () => {
    // Stacks that do not close in time must not keep this process alive (their threads would).
    setTimeout(() => process.exit(1), 5000).unref();
    void system
      .then(closeSystem, () => {})
      .finally(() => process.exit(0));
  });
}
