/**
 * struct virtio_net_hdr: construct / deconstruct over literal bytes, truncated and malformed headers,
 * and the checks against the frame a header came with.
 */
import t from 'tap';
import {
  VIRTIO_NET_HDR_F_DATA_VALID,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_ECN,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_UDP,
  VirtioNetHdrView,
} from '../../servers/wire/virtio-net.js';
import { hex, inShared, toHex } from './fixtures/helpers.js';

// A GSO header as Linux's tun writes it for a 64 KiB TCP segment: NEEDS_CSUM, TCPV4, hdr_len 66,
// gso_size 1448, csum_start 34, csum_offset 16, num_buffers 0 (12-byte header). Little-endian.
const GSO_HDR = hex('01 01 4200 a805 2200 1000 0000');

/** An Ethernet + IPv4 + TCP header (20 + 32) of a frame of `len` bytes, protocol `proto`. */
function frame(len: number, proto = 6, ethertype = 0x0800): Uint8Array {
  const f = new Uint8Array(len);
  f[12] = ethertype >> 8;
  f[13] = ethertype & 255;
  f[14] = 0x45;
  f[16] = (len - 14) >> 8;
  f[17] = (len - 14) & 255;
  f[23] = proto;
  f[14 + 20 + 12] = 8 << 4;
  return f;
}

t.test('deconstruct a GSO header', async (t) => {
  for (const at of [0, 1, 3]) {
    const b = inShared(GSO_HDR, at);
    const v = new VirtioNetHdrView();
    t.equal(v.reset(b, 0, 12), null);
    t.same(
      [v.flags, v.gsoType, v.hdrLen, v.gsoSize, v.csumStart, v.csumOffset, v.numBuffers],
      [VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 66, 1448, 34, 16, 0],
    );
    t.ok(v.isGso);
    t.ok(v.csumTrusted);
    t.equal(v.checkFrame(frame(65000), 0, 65000), null, 'valid against its frame');
  }
});

t.test('construct equals the literal bytes', async (t) => {
  const b = new Uint8Array(14).fill(0xee);
  const v = new VirtioNetHdrView().bind(b, 1, 12);
  v.zero();
  v.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  v.gsoType = VIRTIO_NET_HDR_GSO_TCPV4;
  v.hdrLen = 66;
  v.gsoSize = 1448;
  v.csumStart = 34;
  v.csumOffset = 16;
  t.equal(toHex(b, 1, 12), toHex(GSO_HDR));
  t.equal(b[0], 0xee, 'nothing written before');
  t.equal(b[13], 0xee, 'nothing written after');
});

t.test('the 10-byte header has no num_buffers; other sizes and truncation are refused', async (t) => {
  const v = new VirtioNetHdrView();
  t.equal(v.reset(GSO_HDR, 0, 10), null);
  t.equal(v.numBuffers, 0);
  t.equal(v.reset(GSO_HDR, 0, 11), 'bad-length');
  t.equal(v.reset(GSO_HDR, 3, 10), 'truncated');
  t.equal(v.reset(GSO_HDR, -1, 10), 'truncated');
  t.equal(VirtioNetHdrView.checked(GSO_HDR, 4, 12), 'truncated');
  t.type(VirtioNetHdrView.checked(GSO_HDR, 0, 12), VirtioNetHdrView);
});

t.test('plain, checksum-only and DATA_VALID headers', async (t) => {
  const v = VirtioNetHdrView.checked(new Uint8Array(10)) as VirtioNetHdrView;
  t.notOk(v.isGso);
  t.notOk(v.csumTrusted);
  t.equal(v.checkFrame(frame(60), 0, 60), null);
  t.equal(v.checkFrame(frame(9000), 0, 9000), null, 'the size limit is the link\'s business');
  v.flags = VIRTIO_NET_HDR_F_DATA_VALID;
  t.ok(v.csumTrusted);
  v.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  v.csumStart = 34;
  v.csumOffset = 16;
  t.equal(v.checkFrame(frame(60), 0, 60), null);
  v.gsoType = VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN;
  v.gsoSize = 1448;
  t.ok(v.isGso, 'ECN is a modifier');
  t.equal(v.checkFrame(frame(3000), 0, 3000), null);
});

t.test('malformed headers against their frame', async (t) => {
  const mk = (edit: (v: VirtioNetHdrView) => void): VirtioNetHdrView => {
    const v = new VirtioNetHdrView();
    v.reset(inShared(GSO_HDR), 0, 12);
    edit(v);
    return v;
  };
  const f = frame(3000);
  t.equal(mk((v) => (v.flags = 0x81)).checkFrame(f, 0, 3000), 'bad-code', 'unknown flag bits');
  t.equal(mk((v) => (v.gsoType = VIRTIO_NET_HDR_GSO_UDP)).checkFrame(f, 0, 3000), 'unsupported', 'UDP GSO');
  t.equal(mk((v) => (v.gsoType = 4)).checkFrame(f, 0, 3000), 'unsupported', 'TCPv6');
  t.equal(mk((v) => (v.gsoType = 0x42)).checkFrame(f, 0, 3000), 'unsupported', 'unknown type');
  t.equal(mk((v) => (v.csumStart = 2999)).checkFrame(f, 0, 3000), 'bad-length', 'csum_start beyond the frame');
  t.equal(mk((v) => (v.csumOffset = 0xffff)).checkFrame(f, 0, 3000), 'bad-length', 'csum_offset beyond the frame');
  t.equal(mk((v) => (v.csumStart = 4)).checkFrame(f, 0, 3000), 'bad-length', 'csum_start inside the Ethernet header');
  t.equal(mk((v) => (v.hdrLen = 3001)).checkFrame(f, 0, 3000), 'bad-length', 'hdr_len beyond the frame');
  t.equal(mk((v) => (v.gsoSize = 0)).checkFrame(f, 0, 3000), 'bad-protocol', 'gso_size 0');
  t.equal(mk((v) => (v.flags = 0)).checkFrame(f, 0, 3000), 'bad-protocol', 'GSO without NEEDS_CSUM');
  t.equal(mk(() => {}).checkFrame(frame(3000, 17), 0, 3000), 'bad-protocol', 'TCP GSO on a UDP packet');
  t.equal(mk(() => {}).checkFrame(frame(3000, 6, 0x86dd), 0, 3000), 'bad-protocol', 'TCP GSO on a non-IPv4 frame');
  t.equal(mk((v) => (v.csumOffset = 6)).checkFrame(f, 0, 3000), 'bad-protocol', 'csum_offset not TCP\'s');
  t.equal(mk(() => {}).checkFrame(f, 0, 40), 'bad-length', 'a frame too short for its headers');
});
