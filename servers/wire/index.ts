/** Wire formats: one module per protocol; see each file's header for the format and its contract. */
export * from './errors.js';
export * from './bytes.js';
export * from './checksum.js';
export * from './seq.js';
export * from './ethernet.js';
export * from './arp.js';
export * from './ipv4.js';
export * from './icmp.js';
export * from './udp.js';
export * from './tcp.js';
