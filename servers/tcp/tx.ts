/**
 * Transactions over the tcp server's state: an undo log, so that every input message's changes to the
 * connection table and the Tcbs either all happen or none does, whatever instant the server dies at.
 *
 * Every change to a tx word goes through `set(word, value)`: it appends (word, old value) to the log,
 * bumps the log length, and only then writes the word. `commit()` empties the log (one store). A new
 * incarnation calls `recover()` first: if the log is not empty, its predecessor died inside a
 * transaction, and the old values are written back newest first, which restores the state exactly as
 * it was before the message (the message itself is then offered again by the host: host.ts).
 *
 * Why this is safe at every instant: an entry is complete before the length covers it, and a word is
 * changed only after its entry is covered; restoring a word whose change never happened writes the
 * value it still has. Recovery is idempotent, so dying during recovery is harmless too. Only this
 * thread writes tx words; the other side (the shim) never reads them, so no reader sees a transaction
 * half done. (Store order within one thread is what a successor on another thread observes: it starts
 * after an Atomics handshake with the supervisor, which orders all of the dead thread's stores before.)
 *
 * Bulk data (the send and receive buffers) is not logged: tcp only writes receive-buffer bytes that
 * nobody may read yet (beyond what it has published), so a rolled-back write is invisible and simply
 * redone when the message is handled again.
 */
import { H } from './layout.js';

export class TxOverflowError extends Error {
  constructor(cap: number) {
    super(`tcp transaction log overflow (${cap} entries)`);
  }
}

export class Tx {
  private readonly words: Float64Array;
  private readonly log: Float64Array;
  private readonly header: Int32Array;
  private readonly cap: number;
  private n = 0;

  constructor(words: Float64Array, log: Float64Array, header: Int32Array) {
    this.words = words;
    this.log = log;
    this.header = header;
    this.cap = Math.min(header[H.LOG_CAP], log.length >> 1);
    this.n = Atomics.load(header, H.LOG_LEN);
  }

  /** Undo a transaction left open by a dead incarnation; returns the entries undone. */
  recover(): number {
    const n = Atomics.load(this.header, H.LOG_LEN);
    for (let i = n - 1; i >= 0; i--) this.words[this.log[2 * i]] = this.log[2 * i + 1];
    Atomics.store(this.header, H.LOG_LEN, 0);
    this.n = 0;
    return n;
  }

  get(word: number): number {
    return this.words[word];
  }

  set(word: number, value: number): void {
    const old = this.words[word];
    if (Object.is(old, value)) return;
    const n = this.n;
    if (n >= this.cap) throw new TxOverflowError(this.cap);
    this.log[2 * n] = word;
    this.log[2 * n + 1] = old;
    this.n = n + 1;
    this.header[H.LOG_LEN] = n + 1;
    this.words[word] = value;
  }

  /** Entries in the open transaction. */
  get pending(): number {
    return this.n;
  }

  commit(): void {
    if (this.n === 0) return;
    this.n = 0;
    Atomics.store(this.header, H.LOG_LEN, 0);
  }

  /** Undo the open transaction now (a handler that decided to refuse its record after changes). */
  abort(): void {
    this.recover();
  }
}
