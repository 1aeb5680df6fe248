/**
 * What segmentArrives / listenInput did with a segment: a small number the caller can count (stats per
 * reason) without allocating. Values below DROP_FIRST are not drops; t.lastDrop holds the last verdict
 * of segmentArrives and t.drops counts the drops.
 */
/** Accepted (possibly with nothing to do). */
export const SEG_OK = 0;
/** The segment reset the connection (it is CLOSED now). */
export const SEG_RESET = 1;
/** A SYN hit a TIME_WAIT connection and may open a new one (RFC 9293 §3.10.7.4, RFC 6191): the TCB
 * is CLOSED now; hand the SYN to the listener. */
export const SEG_REOPEN = 2;
/** A retransmitted SYN in SYN_RECEIVED: the SYN-ACK was sent again. */
export const SEG_SYN_AGAIN = 3;

export const DROP_FIRST = 8;
/** No connection (CLOSED): answered with a reset per RFC 9293 §3.10.7.1. */
export const DROP_CLOSED = 8;
/** A listener: use listenInput. */
export const DROP_LISTEN = 9;
/** SYN_SENT / SYN_RECEIVED: unacceptable ACK (a reset was sent). */
export const DROP_BAD_ACK = 10;
/** SYN_SENT: neither SYN nor RST. */
export const DROP_NO_SYN = 11;
/** An RST that is not acceptable (out of window, or without ACK in SYN_SENT). */
export const DROP_RST_IGNORED = 12;
/** RFC 7323 PAWS: old timestamp. */
export const DROP_PAWS = 13;
/** RFC 9293 sequence check failed (an ACK may have been sent). */
export const DROP_OUT_OF_WINDOW = 14;
/** RFC 5961 §3.2: RST in window but not exact: challenge ACK. */
export const DROP_RST_CHALLENGE = 15;
/** RFC 5961 §4.2: SYN in a synchronized state: challenge ACK. */
export const DROP_SYN_CHALLENGE = 16;
/** No ACK bit. */
export const DROP_NO_ACK = 17;
/** SEG.ACK > SND.MAX: challenge ACK. */
export const DROP_ACK_UNSENT = 18;
/** RFC 5961 §5.2: SEG.ACK < SND.UNA - MAX.SND.WND: challenge ACK. */
export const DROP_ACK_TOO_OLD = 19;
/** New data for an orphaned socket (nobody will read it): reset (Linux). */
export const DROP_DATA_AFTER_CLOSE = 20;
/** listenInput: not a SYN this listener can take (RST, SYN+FIN, no SYN). */
export const DROP_NOT_SYN = 21;

export const VERDICT_NAMES: Record<number, string> = {
  0: 'ok',
  1: 'reset',
  2: 'reopen',
  3: 'syn-again',
  8: 'closed',
  9: 'listen',
  10: 'bad-ack',
  11: 'no-syn',
  12: 'rst-ignored',
  13: 'paws',
  14: 'out-of-window',
  15: 'rst-challenge',
  16: 'syn-challenge',
  17: 'no-ack',
  18: 'ack-unsent',
  19: 'ack-too-old',
  20: 'data-after-close',
  21: 'not-syn',
};

/** listenInput results. */
export const LI_SYN_RECEIVED = 1;
/** An ACK (without RST) for a listener: the caller answers with resetFor (RFC 9293 §3.10.7.2). */
export const LI_RESET = 2;
/** Dropped silently (RST, SYN+FIN, no SYN). */
export const LI_DROP = 0;
