/**
 * Network namespaces left behind by a run that was killed before its cleanup: every namespace keepnet's
 * benches and tests create is named PREFIX-PID[-...], so one whose PID no longer exists is stale.
 */
import { execFileSync } from 'node:child_process';

/** Whether process `pid` exists (EPERM: it does, owned by someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Deletes the namespaces whose name is one of `prefixes`, a dash and the PID of a process that is gone
 * (never this process's). Best effort: returns the names it deleted.
 */
export function removeStaleNamespaces(prefixes: readonly string[]): string[] {
  let list: string;
  try {
    list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const line of list.split('\n')) {
    const name = line.trim().split(/\s+/)[0];
    const dash = name ? name.indexOf('-') : -1;
    if (dash < 0 || !prefixes.includes(name.slice(0, dash))) continue;
    const m = /^(\d+)(-|$)/.exec(name.slice(dash + 1));
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    try {
      execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore', timeout: 10_000 });
      removed.push(name);
    } catch {
      // Raced with another cleanup.
    }
  }
  return removed;
}
