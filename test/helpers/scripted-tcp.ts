/**
 * A scripted TCP peer over a RawPeer: the test writes every segment itself (handshake, data, forged
 * RST/SYN/ACK, ICMP errors quoting the connection) and looks at what the stack answers. For RFC 5961
 * and SYN-flood tests without root.
 */
import { RawPeer } from './raw-peer.js';
import { eth, ETHERTYPE_IPV4, icmp, ipv4, parseTcpFrame, synOptions, TCP, tcp, type SegInfo } from './frames.js';

export class ScriptedTcp {
  /** Next sequence number this peer sends; the stack's next (what this peer acknowledges). */
  seq: number;
  ack = 0;
  stackIss = 0;
  /** Segments from the stack for this connection, oldest first (consumed by next()). */
  private cursor = 0;
  /** Data the stack sent on this connection (in order, duplicates removed by sequence). */
  readonly data: Buffer[] = [];

  constructor(
    readonly peer: RawPeer,
    readonly src: number,
    readonly dst: number,
    readonly sport: number,
    readonly dport: number,
    iss = 1_000_000,
  ) {
    this.seq = iss;
  }

  frame(flags: number, data: Uint8Array = new Uint8Array(0), o: { seq?: number; ack?: number; window?: number; options?: Uint8Array } = {}): Uint8Array {
    const seg = tcp({ src: this.src, dst: this.dst, sport: this.sport, dport: this.dport, seq: o.seq ?? this.seq, ack: o.ack ?? this.ack, flags, window: o.window ?? 65535, ...(o.options ? { options: o.options } : {}) }, data);
    return eth(this.peer.stackMac, this.peer.mac, ETHERTYPE_IPV4, ipv4({ src: this.src, dst: this.dst, proto: 6, df: true }, seg));
  }

  async send(flags: number, data: Uint8Array = new Uint8Array(0), o: { seq?: number; ack?: number; window?: number; options?: Uint8Array } = {}): Promise<void> {
    await this.peer.write([this.frame(flags, data, o)]);
    if (o.seq === undefined) this.seq = (this.seq + data.length + (flags & TCP.SYN ? 1 : 0) + (flags & TCP.FIN ? 1 : 0)) >>> 0;
  }

  /** Segments the stack sent to this connection since the last call. */
  segments(): SegInfo[] {
    this.peer.drain();
    const out: SegInfo[] = [];
    const r = this.peer.received;
    for (; this.cursor < r.length; this.cursor++) {
      const s = parseTcpFrame(r[this.cursor]);
      if (s && s.dport === this.sport && s.sport === this.dport && s.dst === this.src) out.push(s);
    }
    return out;
  }

  /** Wait for a segment from the stack matching pred (skipping others); null on timeout. */
  async next(pred: (s: SegInfo) => boolean = () => true, timeoutMs = 3000): Promise<SegInfo | null> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      for (const s of this.segments()) {
        this.absorb(s);
        if (pred(s)) return s;
      }
      if (Date.now() > end) return null;
      await this.peer.until(() => false, 5);
    }
  }

  /** Take in-order data from a segment. */
  private absorb(s: SegInfo): void {
    if (s.dataLen > 0 && s.seq === this.ack) {
      this.data.push(Buffer.from(s.data));
      this.ack = (this.ack + s.dataLen) >>> 0;
    }
    if (s.flags & TCP.FIN && ((s.seq + s.dataLen) >>> 0) === this.ack) this.ack = (this.ack + 1) >>> 0;
  }

  async connect(timeoutMs = 3000): Promise<boolean> {
    await this.send(TCP.SYN, undefined, { options: synOptions(1460, 1, 0) });
    const sa = await this.next((s) => (s.flags & (TCP.SYN | TCP.ACK)) === (TCP.SYN | TCP.ACK), timeoutMs);
    if (!sa) return false;
    this.stackIss = sa.seq;
    this.ack = (sa.seq + 1) >>> 0;
    await this.send(TCP.ACK);
    return true;
  }

  /** Send data and wait until the stack acknowledged all of it. */
  async sendData(d: Uint8Array, timeoutMs = 3000): Promise<boolean> {
    await this.send(TCP.ACK | TCP.PSH, d);
    const want = this.seq;
    return (await this.next((s) => (s.flags & TCP.ACK) !== 0 && s.ack === want, timeoutMs)) !== null;
  }

  /** Wait until `n` bytes of data have come from the stack (acknowledging them); the bytes. */
  async receive(n: number, timeoutMs = 3000): Promise<Buffer | null> {
    const end = Date.now() + timeoutMs;
    while (Buffer.concat(this.data).length < n) {
      if (Date.now() > end) return null;
      await this.next(() => true, Math.max(1, end - Date.now()));
      await this.send(TCP.ACK);
    }
    const all = Buffer.concat(this.data.splice(0));
    return all;
  }

  /** An ICMP error from `reporter` quoting a segment this connection's stack side sent. */
  icmpFrame(type: number, code: number, reporter: number, quotedSeq: number, mtu = 0): Uint8Array {
    const quoted = ipv4({ src: this.dst, dst: this.src, proto: 6 }, tcp({ src: this.dst, dst: this.src, sport: this.dport, dport: this.sport, seq: quotedSeq, ack: this.seq, flags: TCP.ACK }));
    const body = quoted.subarray(0, 28);
    return eth(this.peer.stackMac, this.peer.mac, ETHERTYPE_IPV4, ipv4({ src: reporter, dst: this.dst, proto: 1 }, icmp(type, code, mtu & 0xffff, body)));
  }
}
