/**
 * servers/driver/pcap: classic pcap capture of any link, and a reader for tests.
 *
 * ## Format (what tshark, capinfos and Wireshark read)
 *   file header, 24 bytes, little-endian: magic 0xa1b2c3d4 (microsecond timestamps), version 2.4,
 *     thiszone 0, sigfigs 0, snaplen (65535 by default), linktype 1 (Ethernet).
 *   per frame: ts_sec, ts_usec, incl_len, orig_len (u32 LE), then incl_len bytes;
 *     incl_len = min(len, snaplen), orig_len = len. Timestamps are the central clock's microseconds
 *     (time since the clock page's origin, not the Unix epoch: captures start near 1970-01-01).
 *
 * ## Writing
 *   A sync fd with batching: records are assembled in one preallocated Buffer (256 KiB by default) and
 *   written with one fs.writeSync when it fills, at flush() and at close(). The driver runs in a worker
 *   where a short sync write is cheaper and more predictable than a WriteStream (which allocates a chunk
 *   per write and completes later, so a fast loop can queue unbounded memory). The header is written at
 *   open(), so even an empty capture is a valid file; after a crash the file holds every flushed batch.
 *   `append: true` lets a restarted driver continue the same file (a record torn by the crash is cut).
 *
 * ## Capturing a link
 *   `new PcapLink(inner, writer, opts)` is a Link that records every frame received from and every frame
 *   taken by the inner link (classic pcap has no direction field: use two PcapLinks with rx / tx only, or
 *   one). Where it sits decides what it sees: PcapLink(FaultLink(wire)) records what the stack sends and
 *   gets, FaultLink(PcapLink(wire)) what crosses the wire.
 */
import { closeSync, existsSync, ftruncateSync, fstatSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { ETH_HEADER_BYTES, type FrameBatch, type Link, type LinkStats, type LinkWait } from './link.js';

export const PCAP_MAGIC = 0xa1b2c3d4;
export const PCAP_MAGIC_NS = 0xa1b23c4d;
export const PCAP_VERSION_MAJOR = 2;
export const PCAP_VERSION_MINOR = 4;
export const PCAP_LINKTYPE_ETHERNET = 1;
export const PCAP_FILE_HEADER_BYTES = 24;
export const PCAP_RECORD_HEADER_BYTES = 16;
export const PCAP_DEFAULT_SNAPLEN = 65535;

function codeError<E extends Error>(err: E, code: string): E {
  return Object.assign(err, { code });
}

export interface PcapWriterOptions {
  snaplen?: number;
  linktype?: number;
  /** Batch buffer size; at least one full record. Default 256 KiB. */
  bufferBytes?: number;
  /**
   * Append to an existing capture (a restarted driver continues its predecessor's file): its header
   * must be a little-endian microsecond pcap with the same snaplen and linktype (else
   * ERR_PCAP_INCOMPATIBLE); a record torn by a crash at the end is cut off. A missing or empty file
   * is created as usual.
   */
  append?: boolean;
}

/** The 24-byte classic pcap file header. */
export function pcapFileHeader(snaplen = PCAP_DEFAULT_SNAPLEN, linktype = PCAP_LINKTYPE_ETHERNET): Buffer {
  const h = Buffer.alloc(PCAP_FILE_HEADER_BYTES);
  h.writeUInt32LE(PCAP_MAGIC, 0);
  h.writeUInt16LE(PCAP_VERSION_MAJOR, 4);
  h.writeUInt16LE(PCAP_VERSION_MINOR, 6);
  h.writeInt32LE(0, 8); // thiszone
  h.writeUInt32LE(0, 12); // sigfigs
  h.writeUInt32LE(snaplen, 16);
  h.writeUInt32LE(linktype, 20);
  return h;
}

export class PcapWriter {
  readonly path: string;
  readonly snaplen: number;
  /** Frames recorded. */
  records = 0;
  /** Bytes written to the file so far (flushed). */
  fileBytes = 0;
  private fd: number;
  private readonly buf: Buffer;
  private used = 0;

  private constructor(path: string, fd: number, snaplen: number, bufferBytes: number) {
    this.path = path;
    this.fd = fd;
    this.snaplen = snaplen;
    this.buf = Buffer.allocUnsafe(bufferBytes);
  }

  /** Create (truncate) `path` and write the file header. */
  static open(path: string, opts: PcapWriterOptions = {}): PcapWriter {
    const snaplen = opts.snaplen ?? PCAP_DEFAULT_SNAPLEN;
    if (!Number.isInteger(snaplen) || snaplen < 1 || snaplen > 0x3ffffff) {
      throw codeError(new RangeError(`snaplen must be in [1, 2^26), got ${snaplen}`), 'ERR_OUT_OF_RANGE');
    }
    const bufferBytes = Math.max(opts.bufferBytes ?? 256 * 1024, PCAP_RECORD_HEADER_BYTES + snaplen);
    const linktype = opts.linktype ?? PCAP_LINKTYPE_ETHERNET;
    const h = pcapFileHeader(snaplen, linktype);
    if (opts.append && existsSync(path)) {
      const fd = openSync(path, 'r+');
      try {
        const end = validPrefix(fd, h);
        if (end > 0) {
          ftruncateSync(fd, end);
          closeSync(fd);
          const w = new PcapWriter(path, openSync(path, 'a'), snaplen, bufferBytes);
          w.fileBytes = end;
          return w;
        }
      } catch (e) {
        closeSync(fd);
        throw e;
      }
      closeSync(fd); // empty file: start afresh below
    }
    const fd = openSync(path, 'w');
    const w = new PcapWriter(path, fd, snaplen, bufferBytes);
    writeSync(fd, h);
    w.fileBytes = h.length;
    return w;
  }

  get closed(): boolean {
    return this.fd < 0;
  }

  /** Record bytes[off, off + len) with timestamp tsUs (microseconds; fractions dropped). */
  write(bytes: Uint8Array, off: number, len: number, tsUs: number): void {
    if (this.fd < 0) throw codeError(new Error(`pcap ${this.path} is closed`), 'ERR_PCAP_CLOSED');
    const incl = len < this.snaplen ? len : this.snaplen;
    if (this.used + PCAP_RECORD_HEADER_BYTES + incl > this.buf.length) this.flush();
    const b = this.buf;
    let o = this.used;
    const t = tsUs > 0 ? Math.floor(tsUs) : 0;
    const sec = Math.floor(t / 1e6);
    b.writeUInt32LE(sec >>> 0, o);
    b.writeUInt32LE(t - sec * 1e6, o + 4);
    b.writeUInt32LE(incl, o + 8);
    b.writeUInt32LE(len, o + 12);
    o += PCAP_RECORD_HEADER_BYTES;
    b.set(bytes.subarray(off, off + incl), o);
    this.used = o + incl;
    this.records++;
  }

  /** Write the batch to the file. */
  flush(): void {
    if (this.fd < 0 || this.used === 0) return;
    let done = 0;
    while (done < this.used) done += writeSync(this.fd, this.buf, done, this.used - done);
    this.fileBytes += this.used;
    this.used = 0;
  }

  /** Flush and close. Idempotent. */
  close(): void {
    if (this.fd < 0) return;
    this.flush();
    const fd = this.fd;
    this.fd = -1;
    closeSync(fd);
  }
}

/**
 * Length of the valid prefix of an existing capture open at `fd` (0 if the file is empty): checks its
 * header against `header` and walks the record headers to the last complete record.
 */
function validPrefix(fd: number, header: Buffer): number {
  const size = fstatSync(fd).size;
  if (size === 0) return 0;
  const got = Buffer.alloc(PCAP_FILE_HEADER_BYTES);
  const n = readSync(fd, got, 0, got.length, 0);
  // magic, version, snaplen and linktype must match; thiszone and sigfigs are not compared.
  const same = n === got.length && got.subarray(0, 8).equals(header.subarray(0, 8)) && got.subarray(16).equals(header.subarray(16));
  if (!same) throw codeError(new Error('cannot append: not a matching little-endian microsecond pcap'), 'ERR_PCAP_INCOMPATIBLE');
  const snaplen = header.readUInt32LE(16);
  // Walk the record headers through a 1 MiB window (re-read when a header falls outside it).
  const win = Buffer.allocUnsafe(1 << 20);
  let winStart = 0;
  let winLen = 0;
  let pos = PCAP_FILE_HEADER_BYTES;
  while (pos + PCAP_RECORD_HEADER_BYTES <= size) {
    if (pos < winStart || pos + PCAP_RECORD_HEADER_BYTES > winStart + winLen) {
      winLen = readSync(fd, win, 0, win.length, pos);
      winStart = pos;
    }
    const incl = win.readUInt32LE(pos - winStart + 8);
    const next = pos + PCAP_RECORD_HEADER_BYTES + incl;
    if (incl > snaplen || next > size) break; // torn (or garbage): cut here
    pos = next;
  }
  return pos;
}

export interface PcapRecord {
  tsSec: number;
  /** Microseconds (nanosecond files are converted, truncating). */
  tsUsec: number;
  /** tsSec * 1e6 + tsUsec. */
  tsUs: number;
  inclLen: number;
  origLen: number;
  /** A view of the record's bytes inside the file data. */
  data: Uint8Array;
}

/** Reads classic pcap (either byte order, micro- or nanosecond). For tests and tools. */
export class PcapReader {
  readonly bigEndian: boolean;
  readonly nanosecond: boolean;
  readonly versionMajor: number;
  readonly versionMinor: number;
  readonly thiszone: number;
  readonly sigfigs: number;
  readonly snaplen: number;
  readonly linktype: number;
  private readonly view: DataView;
  private readonly data: Uint8Array;
  private pos = PCAP_FILE_HEADER_BYTES;

  constructor(data: Uint8Array) {
    if (data.length < PCAP_FILE_HEADER_BYTES) {
      throw codeError(new Error(`pcap too short for a file header (${data.length} bytes)`), 'ERR_PCAP_TRUNCATED');
    }
    this.data = data;
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const le = this.view.getUint32(0, true);
    const be = this.view.getUint32(0, false);
    if (le === PCAP_MAGIC || le === PCAP_MAGIC_NS) {
      this.bigEndian = false;
      this.nanosecond = le === PCAP_MAGIC_NS;
    } else if (be === PCAP_MAGIC || be === PCAP_MAGIC_NS) {
      this.bigEndian = true;
      this.nanosecond = be === PCAP_MAGIC_NS;
    } else {
      throw codeError(new Error(`not a classic pcap file (magic 0x${le.toString(16)})`), 'ERR_PCAP_BAD_MAGIC');
    }
    const l = !this.bigEndian;
    this.versionMajor = this.view.getUint16(4, l);
    this.versionMinor = this.view.getUint16(6, l);
    this.thiszone = this.view.getInt32(8, l);
    this.sigfigs = this.view.getUint32(12, l);
    this.snaplen = this.view.getUint32(16, l);
    this.linktype = this.view.getUint32(20, l);
  }

  static open(path: string): PcapReader {
    return new PcapReader(readFileSync(path));
  }

  /** The next record, or null at the end. Throws ERR_PCAP_TRUNCATED on a cut record. */
  next(): PcapRecord | null {
    const v = this.view;
    const p = this.pos;
    if (p === this.data.length) return null;
    if (p + PCAP_RECORD_HEADER_BYTES > this.data.length) {
      throw codeError(new Error(`pcap record header truncated at byte ${p}`), 'ERR_PCAP_TRUNCATED');
    }
    const l = !this.bigEndian;
    const tsSec = v.getUint32(p, l);
    const frac = v.getUint32(p + 4, l);
    const inclLen = v.getUint32(p + 8, l);
    const origLen = v.getUint32(p + 12, l);
    const start = p + PCAP_RECORD_HEADER_BYTES;
    if (start + inclLen > this.data.length) {
      throw codeError(new Error(`pcap record at byte ${p} truncated (${inclLen} bytes announced)`), 'ERR_PCAP_TRUNCATED');
    }
    this.pos = start + inclLen;
    const tsUsec = this.nanosecond ? Math.floor(frac / 1000) : frac;
    return { tsSec, tsUsec, tsUs: tsSec * 1e6 + tsUsec, inclLen, origLen, data: this.data.subarray(start, start + inclLen) };
  }

  /** Every remaining record. */
  readAll(): PcapRecord[] {
    const out: PcapRecord[] = [];
    for (let r = this.next(); r; r = this.next()) out.push(r);
    return out;
  }
}

export interface PcapLinkOptions {
  /** Record received frames (default true). */
  rx?: boolean;
  /** Record transmitted frames (default true). */
  tx?: boolean;
  /** Timestamp source (the central clock); default: the last time given to poll(). */
  clock?: { nowUs(): number };
  /** Close the writer when the link closes (default true). */
  closeWriter?: boolean;
}

/** PcapLink options when it opens its own file: `new PcapLink(link, { path, clock })`. */
export interface PcapLinkFileOptions extends PcapLinkOptions, PcapWriterOptions {
  path: string;
}

/**
 * A Link that records the frames crossing `inner` into a PcapWriter: one given, or one it opens at
 * `path` (then closed with the link unless closeWriter is false).
 */
export class PcapLink implements Link {
  readonly name: string;
  readonly inner: Link;
  readonly writer: PcapWriter;
  readonly mtu: number;
  readonly maxFrame: number;
  readonly checksumOffload: boolean;
  readonly gsoMaxBytes?: number;
  readonly rxSlotBytes?: number;
  readonly mac: Uint8Array;
  readonly wait: LinkWait;
  private readonly rx: boolean;
  private readonly tx: boolean;
  private readonly clock: { nowUs(): number } | undefined;
  private readonly closeWriter: boolean;
  private now = 0;

  constructor(inner: Link, writer: PcapWriter | PcapLinkFileOptions, opts: PcapLinkOptions = {}) {
    if (writer instanceof PcapWriter) {
      this.writer = writer;
    } else {
      opts = writer;
      this.writer = PcapWriter.open(writer.path, writer);
    }
    this.inner = inner;
    this.name = `pcap(${inner.name})`;
    this.mtu = inner.mtu;
    this.maxFrame = inner.maxFrame;
    this.checksumOffload = inner.checksumOffload;
    // Frames pass through to the inner link untouched: its offloads (a vnet-hdr TAP's GSO) stay usable.
    if (inner.gsoMaxBytes !== undefined) this.gsoMaxBytes = inner.gsoMaxBytes;
    if (inner.rxSlotBytes !== undefined) this.rxSlotBytes = inner.rxSlotBytes;
    this.mac = inner.mac;
    this.wait = inner.wait;
    this.rx = opts.rx ?? true;
    this.tx = opts.tx ?? true;
    this.clock = opts.clock;
    this.closeWriter = opts.closeWriter ?? true;
  }

  get stats(): LinkStats {
    return this.inner.stats;
  }

  get rxReady(): boolean {
    return this.inner.rxReady;
  }

  private ts(): number {
    return this.clock ? this.clock.nowUs() : this.now;
  }

  receive(into: FrameBatch): number {
    const m = into.count;
    const n = this.inner.receive(into);
    if (n > 0 && this.rx && !this.writer.closed) {
      const ts = this.ts();
      for (let i = m; i < into.count; i++) this.writer.write(into.bytesAt(i), into.pos(i), into.len[i]!, ts);
    }
    return n;
  }

  transmit(frames: FrameBatch, start = 0): number {
    const k = this.inner.transmit(frames, start);
    if (k > 0 && this.tx && !this.writer.closed) {
      const ts = this.ts();
      for (let i = start; i < start + k; i++) {
        const len = frames.len[i]!;
        if (len >= ETH_HEADER_BYTES && len <= this.maxFrame) this.writer.write(frames.bytesAt(i), frames.pos(i), len, ts);
      }
    }
    return k;
  }

  poll(nowUs: number): number {
    this.now = nowUs;
    return this.inner.poll(nowUs);
  }

  close(): void {
    this.inner.close();
    if (this.closeWriter) this.writer.close();
    else this.writer.flush();
  }
}
