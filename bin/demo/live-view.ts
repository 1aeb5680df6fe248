/**
 * The demo's live terminal view: redrawn every 250 ms on the alternate screen, with keys to inject
 * faults by hand.
 *
 * Plain ANSI escape codes, no terminal UI library: the view is one screen of text rewritten in place
 * (cursor home, clear, write), which is a handful of escape sequences; blessed or ink would bring a
 * widget toolkit (ink: React) and a dozen packages for that, and log-update saves ten lines.
 */
import type { CampaignSnapshot, FaultCampaign, StackSide } from '../../kernel-shim/fault-campaign.js';
import type { FaultKind } from '../../servers/runtime/supervisor.js';
import { tcpInstanceName, tcpInstanceOf, type ServerName } from '../../servers/runtime/topology.js';

const ESC = '\x1b[';
const BOLD = (s: string): string => `${ESC}1m${s}${ESC}22m`;
const DIM = (s: string): string => `${ESC}2m${s}${ESC}22m`;
const RED = (s: string): string => `${ESC}31m${s}${ESC}39m`;
const GREEN = (s: string): string => `${ESC}32m${s}${ESC}39m`;
const YELLOW = (s: string): string => `${ESC}33m${s}${ESC}39m`;
const CYAN = (s: string): string => `${ESC}36m${s}${ESC}39m`;
const BARS = ' ▁▂▃▄▅▆▇█';

const SERVER_KEYS: Record<string, ServerName> = { d: 'driver', i: 'ip', t: 'tcp', u: 'udp' };
const KIND_KEYS: Record<string, FaultKind> = { c: 'crash', x: 'exit', h: 'hang', p: 'poison' };

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function sparkline(values: number[], width: number): string {
  const v = values.slice(-width);
  const max = Math.max(1, ...v);
  return v.map((x) => BARS[Math.min(8, Math.round((x / max) * 8))]).join('');
}

function stateColor(state: string): string {
  const s = state.padEnd(10);
  return state === 'serving' ? GREEN(s) : state === 'recovering' || state === 'starting' ? YELLOW(s) : RED(s);
}

export interface LiveViewOptions {
  /** Called when the person presses q or Ctrl-C. */
  onQuit: () => void;
  stdin?: NodeJS.ReadStream;
  stdout?: NodeJS.WriteStream;
  durationS?: number;
}

export class LiveView {
  private timer: NodeJS.Timeout | null = null;
  private readonly events: string[] = [];
  private side: StackSide = 'a';
  private server: ServerName = 'tcp';
  private readonly out: NodeJS.WriteStream;
  private readonly in: NodeJS.ReadStream;
  private readonly onKey = (buf: Buffer): void => this.key(buf.toString('utf8'));

  constructor(
    private readonly campaign: FaultCampaign,
    private readonly opts: LiveViewOptions,
  ) {
    this.out = opts.stdout ?? process.stdout;
    this.in = opts.stdin ?? process.stdin;
  }

  start(): void {
    this.out.write(`${ESC}?1049h${ESC}?25l`); // alternate screen, hide the cursor
    if (this.in.isTTY) {
      this.in.setRawMode(true);
      this.in.resume();
      this.in.on('data', this.onKey);
    }
    this.timer = setInterval(() => this.draw(), 250);
    this.draw();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.in.isTTY) {
      this.in.off('data', this.onKey);
      this.in.setRawMode(false);
      this.in.pause();
    }
    this.out.write(`${ESC}?25h${ESC}?1049l`); // cursor back, main screen
  }

  event(line: string): void {
    this.events.push(line);
    if (this.events.length > 200) this.events.splice(0, 100);
  }

  private key(k: string): void {
    for (const ch of k) {
      if (ch === 'q' || ch === '\x03') {
        this.event('quit (summary follows)');
        this.opts.onQuit();
        return;
      }
      if (ch === 'a' || ch === 'b') this.side = ch;
      else if (ch === 't' && tcpInstanceOf(this.server) >= 0) {
        // With sharded tcp, 't' again moves to the next instance (tcp, tcp1, ..., back to tcp).
        const count = Object.keys(this.campaign.snapshot().stacks[this.side] ?? {}).filter((n) => tcpInstanceOf(n) >= 0).length;
        const next = tcpInstanceOf(this.server) + 1;
        this.server = tcpInstanceName(next < count ? next : 0);
      } else if (SERVER_KEYS[ch]) this.server = SERVER_KEYS[ch];
      else if (KIND_KEYS[ch]) this.campaign.injectNow(this.side, this.server, KIND_KEYS[ch]);
    }
    this.draw();
  }

  private draw(): void {
    const s: CampaignSnapshot = this.campaign.snapshot();
    const cols = Math.max(60, this.out.columns ?? 100);
    const rows = Math.max(24, this.out.rows ?? 40);
    const L: string[] = [];
    const t = (s.elapsedMs / 1000).toFixed(1);
    const until = this.opts.durationS !== undefined ? ` of ${this.opts.durationS} s` : '';
    L.push(`${BOLD('keepnet')} live crash-recovery demo   ${t} s${until}   ${DIM(`faults go to ${s.targets.map((x) => x.toUpperCase()).join(' and ')}`)}`);
    L.push(DIM('two stacks on a shared-memory wire: B (10.93.0.2, clients) → A (10.93.0.1: http, echo, UDP echo)'));
    L.push('');
    const hdr = `${'server'.padEnd(8)}${'thread'.padStart(7)}${'tid'.padStart(6)}${'inc'.padStart(6)}  ${'state'.padEnd(10)}${'restarts'.padStart(9)}${'last recovery'.padStart(15)}`;
    for (const side of ['a', 'b'] as StackSide[]) {
      const st = s.stacks[side];
      if (!st) continue;
      L.push(BOLD(`stack ${side.toUpperCase()} (${side === 'a' ? 'server side' : 'client side'})`));
      L.push(DIM(hdr));
      for (const n of Object.keys(st) as ServerName[]) {
        const v = st[n];
        const mark = side === this.side && n === this.server ? CYAN('▶ ') : '  ';
        const last = v.lastRecoveryMs === null ? '-' : `${v.lastRecoveryMs.toFixed(2)} ms`;
        L.push(
          `${mark}${n.padEnd(6)}${String(v.thread).padStart(7)}${String(v.threadId).padStart(6)}${String(v.incarnation).padStart(6)}  ${stateColor(v.state)}${String(v.restarts).padStart(9)}${last.padStart(15)}`,
        );
      }
    }
    L.push('');
    const tr = s.traffic;
    const perS = 1000 / s.bucketMs;
    const nowRate = s.throughput.length > 1 ? s.throughput[s.throughput.length - 2] * perS : 0;
    const width = Math.min(cols - 4, 120);
    L.push(`${BOLD('throughput')} ${DIM(`(bytes verified per ${s.bucketMs} ms, last ${((width * s.bucketMs) / 1000).toFixed(0)} s)`)}  now ${formatBytes(nowRate)}/s`);
    L.push(`  ${CYAN(sparkline(s.throughput, width))}`);
    if (tr) {
      const lost = tr.connections.lost === 0 ? GREEN('0') : RED(String(tr.connections.lost));
      const failed = tr.requests.failed === 0 ? GREEN('0') : RED(String(tr.requests.failed));
      L.push(`${BOLD('connections')}  open ${tr.connections.open}   opened ${tr.connections.opened}   lost ${lost}`);
      L.push(`${BOLD('requests')}     ok ${tr.requests.ok}   failed ${failed}   ${DIM(`(GET ${tr.requests.get}, POST ${tr.requests.post})`)}   bytes verified ${formatBytes(tr.bytesVerified)}`);
      L.push(`${BOLD('udp')}          sent ${tr.udp.sent}   echoed ${tr.udp.echoed}   lost ${tr.udp.lost} ${DIM('(UDP may lose datagrams during a driver or ip fault)')}`);
    }
    L.push(`${BOLD('faults')}       injected ${s.faults}   recovered ${s.recovered}   poison messages dropped ${s.poisonDropped}   ${s.current ? YELLOW(`now: ${s.current}`) : ''}`);
    L.push('');
    L.push(BOLD('events'));
    const room = Math.max(3, rows - L.length - 3);
    for (const e of this.events.slice(-room)) L.push(`  ${e.length > cols - 3 ? e.slice(0, cols - 4) + '…' : e}`);
    while (L.length < rows - 2) L.push('');
    L.push(
      DIM('keys: ') +
        `${BOLD('a')}/${BOLD('b')} stack  ${BOLD('d')}/${BOLD('i')}/${BOLD('t')}/${BOLD('u')} driver/ip/tcp/udp  ` +
        `${BOLD('c')}/${BOLD('x')}/${BOLD('h')}/${BOLD('p')} crash/exit/hang/poison it  ${BOLD('q')} quit`,
    );
    L.push(`chosen: ${CYAN(`${this.side.toUpperCase()}.${this.server}`)}`);
    this.out.write(`${ESC}H${L.map((l) => `${l}${ESC}K`).join('\n')}${ESC}J`);
  }
}
