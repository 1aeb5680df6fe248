import t from 'tap';
import {
  ETH_HEADER_LEN,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  EthernetRepr,
  EthernetView,
  MAC_BROADCAST,
  macFormat,
  macIsBroadcast,
  macIsLocal,
  macIsMulticast,
  macIsUnicast,
  macParse,
  readMac,
  writeMac,
} from '../../servers/wire/ethernet.js';
import { ARP_REQUEST, MAC_A, MAC_B, PING_REQUEST, inShared, toHex } from './fixtures/helpers.js';

t.test('MAC helpers', async (t) => {
  t.equal(macParse('b2:fc:65:91:be:11'), MAC_A);
  t.equal(macParse('B2-FC-65-91-BE-11'), MAC_A);
  t.equal(macParse('ff:ff:ff:ff:ff:ff'), MAC_BROADCAST);
  t.equal(macFormat(MAC_A), 'b2:fc:65:91:be:11');
  t.equal(macFormat(0x000102030405), '00:01:02:03:04:05');
  t.equal(macFormat(MAC_BROADCAST), 'ff:ff:ff:ff:ff:ff');
  for (const bad of ['', 'b2:fc:65:91:be', 'b2:fc:65:91:be:11:00', 'g2:fc:65:91:be:11', 'b2fc6591be11', 'b2:fc:65:91:be:1']) {
    t.equal(macParse(bad), null, `reject ${JSON.stringify(bad)}`);
  }
  t.ok(macIsBroadcast(MAC_BROADCAST));
  t.ok(macIsMulticast(MAC_BROADCAST));
  t.ok(macIsMulticast(macParse('01:00:5e:00:00:01')!));
  t.notOk(macIsMulticast(MAC_A));
  t.ok(macIsUnicast(MAC_A));
  t.notOk(macIsUnicast(0));
  t.ok(macIsLocal(MAC_A), 'b2 has the U/L bit set');
  t.notOk(macIsLocal(macParse('00:1b:21:00:00:01')!));
  const b = new Uint8Array(9);
  writeMac(b, 3, MAC_B);
  t.equal(toHex(b), '000000b2b5b9398674');
  t.equal(readMac(b, 3), MAC_B);
});

t.test('deconstruct a captured broadcast ARP frame and a unicast IPv4 frame', async (t) => {
  for (const at of [0, 1, 2, 3]) {
    const b = inShared(ARP_REQUEST, at);
    const v = new EthernetView();
    t.equal(v.reset(b, 0, b.length), null);
    t.equal(v.dst, MAC_BROADCAST);
    t.equal(v.src, MAC_A);
    t.equal(v.ethertype, ETHERTYPE_ARP);
    t.equal(v.payloadOff, 14);
    t.equal(v.payloadLen, 28);
  }
  const v = EthernetView.checked(PING_REQUEST);
  if (typeof v === 'string') throw new Error(v);
  const r = new EthernetRepr();
  t.equal(r.parse(v), null);
  t.same({ dst: r.dst, src: r.src, ethertype: r.ethertype }, { dst: MAC_B, src: MAC_A, ethertype: ETHERTYPE_IPV4 });
});

t.test('construct: emit equals the captured header', async (t) => {
  const r = new EthernetRepr();
  r.dst = MAC_BROADCAST;
  r.src = MAC_A;
  r.ethertype = ETHERTYPE_ARP;
  t.equal(r.bufferLen(), ETH_HEADER_LEN);
  const out = inShared(new Uint8Array(20), 3);
  t.equal(r.emit(out, 1), 14);
  t.equal(toHex(out, 1, 14), toHex(ARP_REQUEST, 0, 14));
  t.throws(() => r.emit(new Uint8Array(13), 0), RangeError);
  // View setters write the same bytes.
  const w = new EthernetView().bind(new Uint8Array(14), 0, 14);
  w.dst = MAC_BROADCAST;
  w.src = MAC_A;
  w.ethertype = ETHERTYPE_ARP;
  t.equal(toHex(w.bytes), toHex(ARP_REQUEST, 0, 14));
});

t.test('truncated and malformed', async (t) => {
  const v = new EthernetView();
  for (let len = 0; len < ETH_HEADER_LEN; len++) t.equal(v.reset(ARP_REQUEST, 0, len), 'truncated', `len ${len}`);
  t.equal(v.len, 0, 'a failed reset clears the view');
  t.equal(v.reset(ARP_REQUEST, 30, 14), 'truncated', 'window past the end of the buffer');
  t.equal(v.reset(ARP_REQUEST, -1, 14), 'truncated');
  const b = ARP_REQUEST.slice();
  b[12] = 0x05;
  b[13] = 0xdc; // 802.3 length 1500
  t.equal(v.reset(b, 0, b.length), null);
  t.equal(new EthernetRepr().parse(v), 'unsupported');
});
