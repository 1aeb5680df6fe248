import t from 'tap';
import { ARP_LEN, ARP_OP_REPLY, ARP_OP_REQUEST, ArpRepr, ArpView } from '../../servers/wire/arp.js';
import { ETH_MIN_FRAME_LEN } from '../../servers/wire/ethernet.js';
import { ARP_REPLY, ARP_REQUEST, IP_A, IP_B, MAC_A, MAC_B, inShared, toHex } from './fixtures/helpers.js';

t.test('deconstruct captured request and reply', async (t) => {
  const v = new ArpView();
  const r = new ArpRepr();
  t.equal(v.reset(ARP_REQUEST, 14, 28), null);
  t.equal(r.parse(v), null);
  t.same({ ...r }, { operation: ARP_OP_REQUEST, senderMac: MAC_A, senderIp: IP_A, targetMac: 0, targetIp: IP_B });
  t.equal(v.htype, 1);
  t.equal(v.ptype, 0x0800);
  t.equal(v.hlen, 6);
  t.equal(v.plen, 4);
  t.equal(v.reset(ARP_REPLY, 14, 28), null);
  t.equal(r.parse(v), null);
  t.same({ ...r }, { operation: ARP_OP_REPLY, senderMac: MAC_B, senderIp: IP_B, targetMac: MAC_A, targetIp: IP_A });
});

t.test('padded to the minimum frame (as received from a NIC)', async (t) => {
  const frame = new Uint8Array(ETH_MIN_FRAME_LEN);
  frame.set(ARP_REPLY);
  const v = new ArpView();
  t.equal(v.reset(frame, 14, frame.length - 14), null);
  t.equal(v.len, ARP_LEN, 'padding is not part of the view');
});

t.test('construct: emit equals the captured bytes', async (t) => {
  const r = new ArpRepr();
  r.operation = ARP_OP_REPLY;
  r.senderMac = MAC_B;
  r.senderIp = IP_B;
  r.targetMac = MAC_A;
  r.targetIp = IP_A;
  t.equal(r.bufferLen(), 28);
  const out = inShared(new Uint8Array(40).fill(0xee), 1);
  t.equal(r.emit(out, 5), 28);
  t.equal(toHex(out, 5, 28), toHex(ARP_REPLY, 14, 28));
  // Turning a request into its reply in place through the view's setters.
  const b = ARP_REQUEST.slice();
  const v = ArpView.checked(b, 14);
  if (typeof v === 'string') throw new Error(v);
  v.operation = ARP_OP_REPLY;
  v.targetMac = v.senderMac;
  v.targetIp = v.senderIp;
  v.senderMac = MAC_B;
  v.senderIp = IP_B;
  t.equal(toHex(b, 14), toHex(ARP_REPLY, 14));
});

t.test('truncated and malformed', async (t) => {
  const v = new ArpView();
  for (let len = 0; len < 28; len++) t.equal(v.reset(ARP_REQUEST, 14, len), 'truncated', `len ${len}`);
  const mut = (i: number, val: number): Uint8Array => {
    const b = ARP_REQUEST.slice(14);
    b[i] = val;
    return b;
  };
  t.equal(v.reset(mut(1, 6), 0, 28), 'bad-hardware', 'htype 6 (IEEE 802)');
  t.equal(v.reset(mut(4, 8), 0, 28), 'truncated', 'hlen 8 needs more bytes');
  const long = new Uint8Array(40);
  long.set(mut(4, 8));
  t.equal(v.reset(long, 0, 40), 'bad-hardware', 'hlen 8 with room for it');
  t.equal(v.reset(mut(2, 0x86), 0, 28), 'bad-protocol', 'ptype not IPv4');
  t.equal(v.reset(mut(5, 3), 0, 28), 'bad-protocol', 'plen 3');
  t.equal(v.reset(mut(7, 3), 0, 28), null);
  t.equal(new ArpRepr().parse(v), 'bad-operation', 'RARP request (3)');
});
