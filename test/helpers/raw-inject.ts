/**
 * A tiny raw-socket tool for the kernel peer's namespace, in Python (python3 is on every machine; raw
 * sockets need root, which the real-peer tests have). Run as `python3 -c RAW_INJECT_PY MODE ARGS...`
 * inside namespace K (wire.spawn('K', rawInjectArgv(...))). Prints one JSON line.
 *
 *   sniff IFACE SRC_PORT DST_PORT TIMEOUT_S
 *       waits for a TCP segment SRC_PORT -> DST_PORT seen on IFACE (AF_PACKET, both directions) and
 *       prints {"seq","ack","win","flags","len"}: from the stack's side of a connection, seq is its
 *       SND.NXT (when idle) and ack its RCV.NXT.
 *   icmp SRC_IP DST_IP Q_SRC Q_DST Q_SPORT Q_DPORT SEQ[,SEQ...] TYPE/CODE[/MTU][,...]
 *       sends to DST_IP, from SRC_IP, one ICMP error per (type/code, seq) quoting an IPv4+TCP header
 *       Q_SRC:Q_SPORT -> Q_DST:Q_DPORT with that sequence number (a segment the victim sent), and
 *       prints {"sent": N}
 *   frags SRC DST SPORT DPORT
 *       sends UDP datagrams SRC:SPORT -> DST:DPORT (an echo service) as hostile fragments, listening on
 *       SRC:SPORT for the echoes: (1) 600 bytes in tiny 8-byte fragments (the UDP header split, RFC
 *       1858); (2) 600 bytes whose middle fragment is overlapped by one with conflicting bytes ('E's);
 *       (3) fragments that never complete; (4) a plain 'ok' datagram. Prints {"sent", "replies"}, each
 *       echo classified as 'tiny' (1's payload, exact), 'overlap-first' (2's original bytes),
 *       'overlap-conflict' (any 'E' delivered), 'ok' or 'other'.
 */
import { existsSync } from 'node:fs';

export const RAW_INJECT_PY = String.raw`
import json, socket, struct, sys, time

def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff

def ip4(a): return socket.inet_aton(a)

def sniff(iface, sport, dport, timeout):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((iface, 0))
    s.settimeout(0.2)
    end = time.time() + timeout
    while time.time() < end:
        try: f = s.recv(65535)
        except socket.timeout: continue
        if len(f) < 34 or f[12:14] != b'\x08\x00': continue
        ip = f[14:]
        ihl = (ip[0] & 15) * 4
        if ip[9] != 6: continue
        tot = struct.unpack('!H', ip[2:4])[0]
        t = ip[ihl:]
        sp, dp, seq, ack, off, flags, win = struct.unpack('!HHIIBBH', t[:16])
        if sp != sport or dp != dport: continue
        doff = (off >> 4) * 4
        print(json.dumps({'seq': seq, 'ack': ack, 'win': win, 'flags': flags, 'len': tot - ihl - doff}))
        return
    print(json.dumps({'error': 'timeout'}))
    sys.exit(1)

def icmp(src, dst, qsrc, qdst, qsport, qdport, seqs, kinds):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    n = 0
    ident = 0x4b4e
    for kind in kinds:
        parts = [int(x) for x in kind.split('/')]
        typ, code = parts[0], parts[1]
        mtu = parts[2] if len(parts) > 2 else 0
        for seq in seqs:
            tcp8 = struct.pack('!HHI', qsport, qdport, seq & 0xffffffff)
            qip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + 20 + 100, 0x1234, 0x4000, 64, 6, 0, ip4(qsrc), ip4(qdst))
            qip = qip[:10] + struct.pack('!H', csum(qip)) + qip[12:]
            rest = struct.pack('!HH', 0, mtu) if typ == 3 and code == 4 else (struct.pack('!BBH', 20, 0, 0) if typ == 12 else b'\0\0\0\0')
            body = struct.pack('!BBH', typ, code, 0) + rest + qip + tcp8
            body = body[:2] + struct.pack('!H', csum(body)) + body[4:]
            ident = (ident + 1) & 0xffff
            hdr = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(body), ident, 0, 64, 1, 0, ip4(src), ip4(dst))
            hdr = hdr[:10] + struct.pack('!H', csum(hdr)) + hdr[12:]
            s.sendto(hdr + body, (dst, 0))
            n += 1
    print(json.dumps({'sent': n}))

def frags(src, dst, sport, dport):
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.bind((src, sport))
    r.settimeout(0.3)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    def udp(payload):
        ln = 8 + len(payload)
        pseudo = ip4(src) + ip4(dst) + struct.pack('!BBH', 0, 17, ln)
        c = csum(pseudo + struct.pack('!HHHH', sport, dport, ln, 0) + payload) or 0xffff
        return struct.pack('!HHHH', sport, dport, ln, c) + payload
    sent = [0]
    def frag(ident, off, data, mf):
        flags = (0x2000 if mf else 0) | (off >> 3)
        hdr = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(data), ident, flags, 64, 17, 0, ip4(src), ip4(dst))
        hdr = hdr[:10] + struct.pack('!H', csum(hdr)) + hdr[12:]
        s.sendto(hdr + data, (dst, 0))
        sent[0] += 1
    tiny = bytes((i * 7) & 255 for i in range(600))
    d = udp(tiny)
    for off in range(0, len(d), 8): frag(0x6b01, off, d[off:off + 8], off + 8 < len(d))
    first = bytes((i * 13 + 1) & 255 for i in range(600))
    d = udp(first)
    frag(0x6b02, 0, d[:256], True)
    frag(0x6b02, 128, b'E' * 256, True)
    frag(0x6b02, 256, d[256:], False)
    for i in range(200): frag(0x6c00 + i, 8 * (1 + i), b'F' * 64, True)
    frag(0x6b03, 0, udp(b'ok'), False)
    replies = []
    end = time.time() + 3
    while time.time() < end and 'ok' not in replies:
        try: m = r.recv(65535)
        except socket.timeout: continue
        replies.append('tiny' if m == tiny else 'overlap-first' if m == first else 'overlap-conflict' if b'E' in m else 'ok' if m == b'ok' else 'other')
    print(json.dumps({'sent': sent[0], 'replies': replies}))

mode = sys.argv[1]
a = sys.argv[2:]
if mode == 'sniff': sniff(a[0], int(a[1]), int(a[2]), float(a[3]))
elif mode == 'icmp': icmp(a[0], a[1], a[2], a[3], int(a[4]), int(a[5]), [int(x) for x in a[6].split(',')], a[7].split(','))
elif mode == 'frags': frags(a[0], a[1], int(a[2]), int(a[3]))
else:
    print('usage: sniff IFACE SPORT DPORT TIMEOUT | icmp SRC DST QSRC QDST QSPORT QDPORT SEQS KINDS | frags SRC DST SPORT DPORT', file=sys.stderr)
    sys.exit(2)
`;

/** The system python3 if there is one (pyenv shims may not be on root's PATH in a namespace). */
export function python3(): string {
  return ['/usr/bin/python3', '/usr/local/bin/python3'].find((p) => existsSync(p)) ?? 'python3';
}

/** argv for wire.spawn('K', ...). */
export function rawInjectArgv(mode: 'sniff' | 'icmp' | 'frags', args: readonly (string | number)[]): string[] {
  return [python3(), '-c', RAW_INJECT_PY, mode, ...args.map(String)];
}
