/**
 * The kernel's side of `keepnet bench bulk|rr|crr|all`, in a process of its own (bench/net.ts forks it
 * once per run): both ends of each kernel measurement live here, in one Node process, as keepnet's two
 * stacks live in the parent. Measured apart because the parent keeps keepnet's stacks up between their
 * rounds, and their threads and supervisors, idle as they are, slowed the kernel's rr by about 9% when
 * they shared its process (six alternated runs each on this machine: 85-100k against 95-112k
 * transactions/s).
 *
 * Protocol (IPC): the parent sends { id, test, seconds }; the child answers { id, row } or
 * { id, error }. It exits when the parent disconnects.
 */
import { measureKernel, NET_TESTS, type NetTest } from './net.js';

interface Ask {
  id: number;
  test: NetTest;
  seconds: number;
}

if (process.send) {
  process.on('message', (m: Ask) => {
    const ok = NET_TESTS.includes(m?.test) && Number.isFinite(m?.seconds) && m.seconds > 0;
    const answer = ok
      ? measureKernel(m.test, m.seconds).then(
          (row) => ({ id: m.id, row }),
          (err: unknown) => ({ id: m.id, error: err instanceof Error ? err.message : String(err) }),
        )
      : Promise.resolve({ id: m?.id, error: `bad request ${JSON.stringify(m)}` });
    void answer.then((a) => process.send?.(a));
  });
  process.on('disconnect', () => process.exit(0));
}
