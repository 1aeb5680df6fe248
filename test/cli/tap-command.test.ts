/**
 * `keepnet tap` end to end against the Linux kernel: the CLI runs as a child process and opens (creates)
 * a TAP device inside a namespace K that this test creates; the kernel's end is that same TAP (address
 * 10.78.X.1 on it, the CLI serving 10.78.X.2). From K: 200 UDP echoes byte-exact, datagrams to discard
 * that never come back, ping with 0% loss; then SIGTERM, and the CLI must exit 0 with its counters as
 * JSON on the last stdout line and a capture that tshark can read. Also: the argument errors (exit 2 and
 * a clear message), and a SIGTERM right after the TAP appears (during start-up) still ends cleanly.
 *
 * Traffic only flows inside K (named kncli-PID, removed in teardown, on exit and on a signal; a stale
 * one of a dead run is removed by the next run). Root is needed: skipped otherwise, failed under CI.
 */
import t from 'tap';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, readSync, closeSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { netnsUnavailableReason, which } from '../helpers/netns.js';
import { rawInjectArgv } from '../helpers/raw-inject.js';
import { removeStaleNamespaces } from '../../bench/stale-netns.js';

const CLI = fileURLToPath(new URL('../../bin/keepnet.js', import.meta.url));
const CLIENT = fileURLToPath(new URL('../helpers/udp-echo-client.js', import.meta.url));
const TCP_PEER = fileURLToPath(new URL('../helpers/tcp-peer.js', import.meta.url));

const PID = process.pid;
const NS = `kncli-${PID}`;
const X = (PID % 254) + 1;
const STACK_ADDR = `10.78.${X}.2`;
const KERNEL_ADDR = `10.78.${X}.1`;
const DEV = `ktap${X}`;
const DEV_EARLY = `ktape${X}`;
const DEV_DOWN = `ktapd${X}`;
const PCAP = join(tmpdir(), `keepnet-tap-cli-${PID}.pcap`);
/** A namespace that never exists: argument-error runs name it, so nothing could ever open a TAP outside K. */
const NO_NS = `kncli-none-${PID}`;

// ---------------------------------------------------------------------------------------------
// Processes

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

interface Proc {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  readonly exited: Promise<Exit>;
  alive(): boolean;
}

const children = new Set<ChildProcess>();

/** Starts a command in the background; SIGKILLed after timeoutMs. Never throws: a spawn error is an exit. */
function start(cmd: string, args: readonly string[], timeoutMs: number): Proc {
  const child = spawn(cmd, args as string[], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  let timedOut = false;
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  const exited = new Promise<Exit>((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, signal, stdout: out, stderr: err, timedOut });
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code: -1, signal: null, stdout: out, stderr: `${err}${String(e)}`, timedOut });
    });
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    alive: () => child.exitCode === null && child.signalCode === null,
  };
}

const run = (cmd: string, args: readonly string[], timeoutMs = 30_000): Promise<Exit> => start(cmd, args, timeoutMs).exited;
const inK = (argv: readonly string[], timeoutMs = 30_000): Promise<Exit> => run('ip', ['netns', 'exec', NS, ...argv], timeoutMs);

/** `ip ...` that must succeed. */
async function ip(args: readonly string[]): Promise<void> {
  const r = await run('ip', args, 10_000);
  if (r.code !== 0) throw new Error(`\`ip ${args.join(' ')}\` failed (exit ${r.code}${r.timedOut ? ', timed out' : ''}): ${r.stderr.trim()}`);
}

/** Resolves within timeoutMs with the exit, or undefined if the process is still running then. */
async function exitWithin(p: Proc, timeoutMs: number): Promise<Exit | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([p.exited, new Promise<undefined>((res) => (timer = setTimeout(() => res(undefined), timeoutMs)))]);
  clearTimeout(timer);
  return r;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Starts the CLI (from the root namespace: it enters K itself to create the TAP). */
function startCli(args: readonly string[]): Proc {
  return start(process.execPath, [CLI, 'tap', ...args], 120_000);
}

/** Polls (`ip -n K link show`) until dev exists in K; throws past the deadline or if the CLI exits first. */
async function waitForTap(cli: Proc, dev: string, deadlineMs = 15_000): Promise<void> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    if ((await run('ip', ['-n', NS, 'link', 'show', dev], 5_000)).code === 0) return;
    if (!cli.alive()) throw new Error(`the CLI exited before ${dev} appeared in ${NS}: ${cli.stderr().trim()}`);
    if (Date.now() > until) throw new Error(`${dev} did not appear in ${NS} within ${deadlineMs} ms; CLI stderr: ${cli.stderr().trim()}`);
    await sleep(25);
  }
}

/**
 * Waits for dev to appear in K and sets it up the moment it does: a tight loop of `ip -n K link set
 * dev up` in one shell (it fails until the device exists), with a deadline, given up if the CLI exits.
 * Why not a slower poll: the stack starts writing (its gratuitous ARP) within a few tens of ms of
 * creating the TAP, and a write to a TAP that is still down fails with EIO, which today crashes the
 * driver server (see 'a TAP left down' below). Setting it up within ~2 ms of its creation keeps the
 * kernel's end ready before the first write, so the restart counters below are deterministic.
 */
async function tapUp(cli: Proc, dev: string, deadlineMs = 15_000): Promise<void> {
  const loop = start('sh', ['-c', `until ip -n ${NS} link set ${dev} up 2>/dev/null; do :; done`], deadlineMs);
  const first = await Promise.race([loop.exited.then(() => 'loop' as const), cli.exited.then(() => 'cli' as const)]);
  if (first === 'cli') {
    loop.child.kill('SIGKILL');
    await loop.exited;
    throw new Error(`the CLI exited before ${dev} appeared in ${NS}: ${cli.stderr().trim()}`);
  }
  const r = await loop.exited;
  if (r.code !== 0) throw new Error(`${dev} did not appear in ${NS} within ${deadlineMs} ms (${r.timedOut ? 'deadline' : `exit ${r.code}`}); CLI stderr: ${cli.stderr().trim()}`);
  const show = await run('ip', ['-n', NS, 'link', 'show', dev], 5_000);
  if (show.code !== 0 || !/[<,]UP[,>]/.test(show.stdout)) throw new Error(`${dev} is not up in ${NS}: ${show.stdout}${show.stderr}`);
}

function lastJsonLine(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] ?? '') as Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------
// Cleanup: teardown, and also process exit and signals (a tap timeout SIGTERMs this process)

function cleanupSync(): void {
  for (const c of [...children]) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
  children.clear();
  try {
    execFileSync('ip', ['netns', 'del', NS], { stdio: 'ignore', timeout: 10_000 });
  } catch {
    /* not there */
  }
  rmSync(PCAP, { force: true });
}

function installCleanupHooks(): void {
  process.on('exit', cleanupSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      cleanupSync();
      // Then die of the signal as if we had not been here: re-raise it, without this listener (tap's own
      // exit handling, if listening, now sees itself alone and lets the signal kill the process).
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

// ---------------------------------------------------------------------------------------------
// Argument errors: no root needed (they fail before anything is opened; the namespace named does
// not exist, so even a CLI that forgot a check could not create a TAP anywhere).

t.test('argument errors: exit 2 and a clear message on stderr', async (t) => {
  const cases: { name: string; args: string[]; message: RegExp }[] = [
    { name: 'missing --dev', args: ['--netns', NO_NS, '--address', `${STACK_ADDR}/24`], message: /^keepnet: --dev NAME is required$/m },
    { name: 'missing --address', args: ['--dev', DEV, '--netns', NO_NS], message: /^keepnet: --address A\.B\.C\.D\/P is required$/m },
    {
      name: 'unknown service',
      args: ['--dev', DEV, '--netns', NO_NS, '--address', `${STACK_ADDR}/24`, '--serve', 'echo,chargen'],
      message: /^keepnet: unknown service 'chargen' \(services: echo, discard, http\)$/m,
    },
    {
      name: 'unknown option',
      args: ['--dev', DEV, '--netns', NO_NS, '--address', `${STACK_ADDR}/24`, '--bogus'],
      message: /^keepnet: .*Unknown option '--bogus'/m,
    },
  ];
  for (const c of cases) {
    const r = await run(process.execPath, [CLI, 'tap', ...c.args], 30_000);
    t.equal(r.code, 2, `${c.name}: exit code 2`);
    t.match(r.stderr, c.message, `${c.name}: says what is wrong`);
    t.match(r.stderr, /usage: keepnet/, `${c.name}: and shows the usage`);
    t.notMatch(r.stderr, /^\s+at /m, `${c.name}: no stack trace`);
    t.equal(r.stdout, '', `${c.name}: nothing on stdout`);
  }
});

// ---------------------------------------------------------------------------------------------
// Against the kernel

const reason = netnsUnavailableReason();
if (reason) {
  if (process.env['CI']) t.fail(`keepnet tap against the kernel cannot run in CI: ${reason}`);
  else t.test('keepnet tap against the kernel', { skip: `needs root and a network namespace: ${reason}` }, () => {});
} else {
  removeStaleNamespaces(['kncli']);
  installCleanupHooks();
  let cli: Proc | undefined;
  let echo: { sent: number; ok: number; retries: number; mismatched: number } | undefined;
  let discards = 0;
  let tcpAccepted = 0;
  let report: { servers: Record<string, Record<string, unknown>>; drops: unknown } | undefined;

  t.teardown(async () => {
    if (cli?.alive()) {
      cli.child.kill('SIGKILL');
      await exitWithin(cli, 5_000);
    }
    cleanupSync();
  });

  t.before(async () => {
    rmSync(PCAP, { force: true });
    await ip(['netns', 'add', NS]);
    await ip(['-n', NS, 'link', 'set', 'lo', 'up']);
    cli = startCli(['--dev', DEV, '--netns', NS, '--address', `${STACK_ADDR}/24`, '--serve', 'echo,discard,http', '--pcap', PCAP, '--json']);
    await tapUp(cli, DEV);
    // The kernel's end is the TAP itself.
    await ip(['-n', NS, 'addr', 'add', `${KERNEL_ADDR}/24`, 'dev', DEV]);
  });

  t.test('UDP echo: 200 datagrams from the kernel come back byte-exact', async (t) => {
    const r = await inK(['node', CLIENT, STACK_ADDR, '7', '200', '5', '1400', '1000', '8'], 60_000);
    t.equal(r.code, 0, 'the client finished', { stderr: r.stderr, timedOut: r.timedOut });
    echo = JSON.parse(r.stdout.trim().split('\n').pop() || '{}');
    t.equal(echo?.ok, 200, 'every echo came back');
    t.equal(echo?.mismatched, 0, 'byte-exact');
  });

  t.test('UDP discard: datagrams to port 9 get no answer', async (t) => {
    // Five datagrams to port 9, then a marker to echo (7): once the marker's echo is back, an answer
    // to any of the five (sent before it, on the same path) would have been too; wait a little more.
    const script = `
      const d = require('dgram').createSocket('udp4');
      let fromDiscard = 0, marker = false;
      d.on('message', (m, r) => { if (r.port === 9) fromDiscard++; else if (r.port === 7 && m.toString() === 'marker') marker = true; });
      d.bind(0, async () => {
        const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
        for (let i = 0; i < 5; i++) d.send(Buffer.alloc(64 + i * 100, i), 9, '${STACK_ADDR}');
        for (let i = 0; i < 10 && !marker; i++) { d.send('marker', 7, '${STACK_ADDR}'); await sleep(300); }
        await sleep(300);
        console.log(JSON.stringify({ fromDiscard, marker }));
        d.close();
      });`;
    const r = await inK(['node', '-e', script], 30_000);
    t.equal(r.code, 0, 'the sender finished', { stderr: r.stderr });
    const res = JSON.parse(r.stdout.trim().split('\n').pop() || '{}') as { fromDiscard?: number; marker?: boolean };
    t.equal(res.marker, true, 'the echo sent after them came back (the path works)');
    t.equal(res.fromDiscard, 0, 'nothing came back from the discard port');
    discards = 5;
  });

  t.test('TCP echo and http: the kernel talks to the TCP services', async (t) => {
    const e = await inK(['node', TCP_PEER, 'echo', STACK_ADDR, '7', String(1 << 20), '4'], 60_000);
    t.equal(e.code, 0, 'the echo client finished', { stderr: e.stderr });
    t.equal(JSON.parse(e.stdout.trim().split('\n').pop() || '{}').ok, true, '1 MiB echoed byte-exact over TCP');
    const g = await inK(['node', TCP_PEER, 'get', `http://${STACK_ADDR}/bytes/3000000`, '4', '8'], 60_000);
    t.equal(g.code, 0, 'the http client finished', { stderr: g.stderr });
    t.match(JSON.parse(g.stdout.trim().split('\n').pop() || '{}'), { ok: 8, bad: 0 }, 'GET /bytes/N verified by its x-content-sha256');
    tcpAccepted = 9;
  });

  t.test('ping: 5 of 5 answered', async (t) => {
    const r = await inK(['ping', '-c', '5', '-i', '0.05', '-W', '2', STACK_ADDR], 30_000);
    t.match(r.stdout, /5 packets transmitted, 5 received, 0% packet loss/, '0% loss', { stdout: r.stdout, stderr: r.stderr });
  });

  // Issue 8's last clause: the CLI's own --json counters (checked by the SIGTERM test below) report no
  // restart of any server after all of this.
  t.test('hostile traffic from K: SYN flood, blind RST/SYN/data, ICMP errors, hostile fragments; the services still answer', { skip: which('hping3') ? false : 'hping3 is not installed (.ci/run installs it)' }, async (t) => {
    const hping = (args: string[], ms = 30_000): Promise<Exit> => inK(['hping3', ...args, STACK_ADDR], ms);
    // A SYN flood at full rate from random sources (its SYN-ACKs have no route back: dropped by ip).
    const flood = await inK(['timeout', '-s', 'INT', '2', 'hping3', '--flood', '-S', '-p', '80', '--rand-source', STACK_ADDR], 20_000);
    t.match(flood.stdout + flood.stderr, /packets transmitted/, 'hping3 flooded');
    // Blind RSTs, SYNs and data (random sequence and acknowledgment numbers) at the services' ports.
    for (const args of [['-R', '-p', '80'], ['-S', '-p', '7'], ['-A', '-P', '-d', '48', '-p', '7'], ['-A', '-P', '-d', '48', '-p', '80']]) {
      const r = await hping(['-q', '-c', '100', '-i', 'u1000', ...args]);
      t.ok(r.code === 0 || r.code === 1, `hping3 ${args.join(' ')}: sent`);
    }
    // ICMP errors quoting a made-up connection to the http port.
    const icmp = await hping(['-q', '--icmp', '-C', '3', '-K', '3', '--icmp-ipsrc', STACK_ADDR, '--icmp-ipdst', KERNEL_ADDR, '--icmp-srcport', '80', '--icmp-dstport', '40000', '-c', '50', '-i', 'u1000']);
    t.ok(icmp.code === 0 || icmp.code === 1, 'ICMP errors sent');
    // Tiny and overlapping fragments to the UDP echo service.
    const fr = await inK(rawInjectArgv('frags', [KERNEL_ADDR, STACK_ADDR, 41000, 7]), 30_000);
    t.equal(fr.code, 0, 'the fragment tool ran', { stderr: fr.stderr });
    const frags = JSON.parse(fr.stdout.trim().split('\n').pop() || '{}') as { sent?: number; replies?: string[] };
    t.comment(`fragments: ${JSON.stringify(frags)}`);
    t.ok(frags.replies?.includes('tiny'), 'the datagram sent as tiny fragments was reassembled and echoed exactly');
    t.notOk(frags.replies?.includes('overlap-conflict'), 'no datagram with conflicting overlap bytes was delivered');
    t.ok(frags.replies?.includes('ok'), 'a plain datagram after them is echoed');
    // The services still answer, byte-exact.
    const e = await inK(['node', TCP_PEER, 'echo', STACK_ADDR, '7', String(256 << 10), '2'], 60_000);
    t.equal(JSON.parse(e.stdout.trim().split('\n').pop() || '{}').ok, true, 'TCP echo still byte-exact', { stderr: e.stderr });
    const g = await inK(['node', TCP_PEER, 'get', `http://${STACK_ADDR}/bytes/100000`, '2', '4'], 60_000);
    t.match(JSON.parse(g.stdout.trim().split('\n').pop() || '{}'), { ok: 4, bad: 0 }, 'http still verified', { stdout: g.stdout, stderr: g.stderr });
    tcpAccepted += 3;
  });

  t.test('SIGTERM: exit 0 within seconds, the counters as JSON on the last line', async (t) => {
    t.ok(cli?.alive(), 'the CLI was still serving');
    cli!.child.kill('SIGTERM');
    const r = await exitWithin(cli!, 10_000);
    t.ok(r, 'it exited within 10 s');
    if (!r) return;
    t.equal(r.code, 0, 'exit code 0', { stderr: r.stderr });
    t.equal(r.signal, null, 'not killed by the signal');
    let parsed: Record<string, unknown> = {};
    t.doesNotThrow(() => (parsed = lastJsonLine(r.stdout)), 'the last stdout line is JSON', { stdout: r.stdout.slice(-2000) });
    report = parsed as typeof report;
    const servers = report?.servers ?? {};
    t.type(servers, 'object', 'servers');
    for (const name of ['driver', 'ip', 'tcp', 'udp']) {
      t.type(servers[name], 'object', `servers.${name}`);
      t.equal(servers[name]?.['restarts'], 0, `servers.${name}.restarts === 0`);
    }
    const tcp = servers['tcp'] ?? {};
    t.ok(Number(tcp['accepted']) >= tcpAccepted, `tcp.accepted ${tcp['accepted']} counts the ${tcpAccepted} connections`);
    const udp = servers['udp'] ?? {};
    const expected = (echo?.ok ?? 200) + discards;
    t.ok(Number(udp['rx']) >= expected, `udp.rx ${udp['rx']} counts the ${expected} echo and discard datagrams`);
    t.ok(Number(udp['delivered']) >= expected, `udp.delivered ${udp['delivered']} >= ${expected}`);
    t.ok(Number(udp['tx']) >= (echo?.ok ?? 200), `udp.tx ${udp['tx']} counts the echoes sent back`);
    const ipc = servers['ip'] ?? {};
    t.ok(Number(ipc['delivered-udp']) >= expected, `ip.delivered-udp ${ipc['delivered-udp']} >= ${expected}`);
    t.ok(Number(ipc['echo-replied']) >= 5, `ip.echo-replied ${ipc['echo-replied']} counts the pings`);
    const driver = servers['driver'] ?? {};
    t.ok(Number(driver['rxFrames']) >= expected + 5, `driver.rxFrames ${driver['rxFrames']}`);
    const drops = report?.drops;
    t.ok(drops !== null && typeof drops === 'object' && !Array.isArray(drops), 'drops is an object');
    for (const [k, v] of Object.entries((drops ?? {}) as Record<string, unknown>)) {
      t.match(k, /^(driver|ip|tcp|udp):./, `drop key ${k} is server:reason`);
      t.ok(Number.isInteger(v) && (v as number) >= 0, `drop ${k} = ${v} is a count`);
    }
  });

  t.test('the capture: a pcap file that tshark reads, with the UDP traffic', async (t) => {
    t.ok(existsSync(PCAP), `${PCAP} exists`);
    if (!existsSync(PCAP)) return;
    t.ok(statSync(PCAP).size > 24, 'more than the global header');
    const head = Buffer.alloc(4);
    const fd = openSync(PCAP, 'r');
    readSync(fd, head, 0, 4, 0);
    closeSync(fd);
    t.ok([0xa1b2c3d4, 0xa1b23c4d].includes(head.readUInt32LE(0)) || [0xa1b2c3d4, 0xa1b23c4d].includes(head.readUInt32BE(0)), 'pcap magic');
    const tshark = which('tshark');
    if (!tshark) {
      // tshark is not installed here: the file's header was checked above, its frames are not decoded.
      t.comment('tshark not installed: skipping the decode of the capture');
      return;
    }
    const r = await run(tshark, ['-n', '-r', PCAP, '-Y', 'udp', '-T', 'fields', '-e', 'udp.srcport', '-e', 'udp.dstport'], 60_000);
    t.equal(r.code, 0, 'tshark read the file', { stderr: r.stderr });
    const frames = r.stdout.split('\n').filter((l) => l.trim()).map((l) => l.split('\t').map(Number));
    t.ok(frames.length > 0, `tshark shows UDP frames (${frames.length})`);
    const toEcho = frames.filter(([, d]) => d === 7).length;
    const fromEcho = frames.filter(([s]) => s === 7).length;
    const toDiscard = frames.filter(([, d]) => d === 9).length;
    const fromDiscard = frames.filter(([s]) => s === 9).length;
    t.ok(toEcho >= 200 && fromEcho >= 200, `the echo requests (${toEcho}) and replies (${fromEcho})`);
    t.equal(toDiscard, discards, `the ${discards} datagrams to discard`);
    t.equal(fromDiscard, 0, 'and nothing from it');
  });

  t.test('a SIGTERM during start-up (as soon as the TAP exists) still ends in exit 0 and the report', async (t) => {
    const early = startCli(['--dev', DEV_EARLY, '--netns', NS, '--address', `${STACK_ADDR}/24`, '--serve', 'echo', '--json']);
    try {
      await tapUp(early, DEV_EARLY);
      early.child.kill('SIGTERM');
      const r = await exitWithin(early, 15_000);
      t.ok(r, 'it exited within 15 s');
      if (!r) return;
      t.equal(r.code, 0, 'exit code 0', { stderr: r.stderr });
      t.equal(r.signal, null, 'not killed by the signal');
      let parsed: Record<string, unknown> = {};
      t.doesNotThrow(() => (parsed = lastJsonLine(r.stdout)), 'the last stdout line is JSON', { stdout: r.stdout });
      const servers = (parsed['servers'] ?? {}) as Record<string, Record<string, unknown>>;
      t.equal(servers['driver']?.['restarts'], 0, 'servers.driver.restarts === 0');
    } finally {
      if (early.alive()) early.child.kill('SIGKILL');
      await early.exited;
    }
  });

  t.test('a TAP left down (no kernel end yet): the stack\'s first write does not crash the driver', async (t) => {
    // Known driver bug, recorded as TODO: write() to a TAP that is not up fails with EIO (the kernel
    // counts it as an RX drop of the TAP), the driver server throws on it and is restarted (three
    // times, then the frame is dropped as poison). The TAP link should drop and count such frames.
    const down = startCli(['--dev', DEV_DOWN, '--netns', NS, '--address', `10.78.${X}.3/24`, '--json']);
    try {
      await waitForTap(down, DEV_DOWN);
      // Short polls until the stack's gratuitous ARP has hit the down TAP (RX dropped > 0), at most 5 s
      // (a fixed driver might hold its frames while the link is down: then nothing is dropped).
      const until = Date.now() + 5_000;
      let dropped = 0;
      while (dropped === 0 && Date.now() < until && down.alive()) {
        const s = await run('ip', ['-n', NS, '-s', 'link', 'show', DEV_DOWN], 5_000);
        const m = /RX:.*\n\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/.exec(s.stdout);
        dropped = Number(m?.[4] ?? 0);
        if (dropped === 0) await sleep(25);
      }
      t.comment(dropped > 0 ? `the stack wrote to the down TAP: the kernel dropped ${dropped}` : 'the stack did not write to the down TAP within 5 s');
      down.child.kill('SIGTERM');
      const r = await exitWithin(down, 15_000);
      t.equal(r?.code, 0, 'exit code 0', { stderr: r?.stderr });
      let parsed: Record<string, unknown> = {};
      t.doesNotThrow(() => (parsed = lastJsonLine(r?.stdout ?? '')), 'the last stdout line is JSON');
      const servers = (parsed['servers'] ?? {}) as Record<string, Record<string, unknown>>;
      t.equal(servers['driver']?.['restarts'], 0, 'the driver was not restarted (writes to a down TAP are counted drops)', {
        restartsByCause: servers['driver']?.['restartsByCause'],
      });
    } finally {
      if (down.alive()) down.child.kill('SIGKILL');
      await down.exited;
    }
  });
}
