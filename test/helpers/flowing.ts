import type { Stack } from '../../kernel-shim/stack.js';

/**
 * Resolves once the stack's ip has routed a packet through a resolved neighbour entry since the call.
 * A new ip incarnation starts with an empty neighbour (ARP) cache, and packets waiting for an answer
 * die with the incarnation (volatile state, as a kernel's neighbour table): each fault must hit a
 * stack that flows again, not one still resolving. (On a loaded machine resolution outlasted the
 * pause between faults now and then, and the next ip fault lost the whole window waiting on it.)
 */
export async function flowing(s: Stack, timeoutMs = 10_000): Promise<void> {
  const hits = (): number => s.stats().servers.ip.protocol['query-hit'] ?? 0;
  const seen = hits();
  for (const t0 = Date.now(); hits() === seen && Date.now() - t0 < timeoutMs; ) await new Promise((r) => setTimeout(r, 5));
}
