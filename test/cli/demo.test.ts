/**
 * `keepnet demo` and `keepnet faults` under real traffic, as child processes (no root needed: two
 * stacks on the shared-memory wire). Checks the JSON fields and that, with faults injected into every
 * server, no connection is lost, no request fails and bytes were verified; and that --report writes an
 * SVG with the fault markers and the histogram. No wall-clock speed is asserted.
 */
import t from 'tap';
import { runCli } from '../helpers/cli.js';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const run = runCli;

function lastJson(stdout: string): Record<string, any> {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

t.test('keepnet demo --duration 8 --json: faults under traffic, nothing lost', async (t) => {
  const r = await run(['demo', '--duration', '8', '--json']);
  t.equal(r.code, 0, `exit 0 (stderr: ${r.stderr.slice(-2000)})`);
  const j = lastJson(r.stdout);
  for (const k of ['durationS', 'faults', 'recovered', 'connectionsLost', 'bytesVerified']) t.type(j[k], 'number', k);
  t.type(j.requests?.ok, 'number');
  t.type(j.requests?.failed, 'number');
  t.type(j.udp?.sent, 'number');
  t.type(j.udp?.echoed, 'number');
  for (const k of ['p50', 'p99', 'max']) t.type(j.recoveryMs?.[k], 'number', `recoveryMs.${k}`);
  t.ok(j.faults > 0, `faults injected: ${j.faults}`);
  t.equal(j.recovered, j.faults, 'every fault recovered');
  t.equal(j.connectionsLost, 0, 'no connection lost');
  t.equal(j.requests.failed, 0, `no request failed (failures: ${JSON.stringify(j.failures)})`);
  t.ok(j.requests.ok > 0, 'requests completed');
  t.ok(j.bytesVerified > 0, 'bytes verified');
  t.ok(j.udp.sent > 0 && j.udp.echoed > 0 && j.udp.echoed <= j.udp.sent, `udp ${j.udp.echoed}/${j.udp.sent} echoed`);
  t.ok(j.durationS >= 8, 'ran for the duration');
});

t.test('keepnet faults --count 24 --json --report: the traffic fields and a valid SVG', async (t) => {
  const svg = join(tmpdir(), `keepnet-faults-${process.pid}.svg`);
  t.teardown(() => rmSync(svg, { force: true }));
  const r = await run(['faults', '--count', '24', '--json', '--report', svg]);
  t.equal(r.code, 0, `exit 0 (stderr: ${r.stderr.slice(-2000)})`);
  const j = lastJson(r.stdout);
  t.equal(j.injected, 24);
  t.equal(j.recovered, 24);
  t.equal(j.connectionsLost, 0, 'no connection lost');
  t.equal(j.requests.failed, 0, `no request failed (failures: ${JSON.stringify(j.failures)})`);
  t.ok(j.requests.ok > 0);
  t.ok(j.bytesVerified > 0);
  t.equal(j.probes.lost, 0);
  t.equal(j.probes.corrupted, 0);
  t.type(j.udp.sent, 'number');
  t.same(Object.keys(j.byServer).sort(), ['driver', 'ip', 'tcp', 'udp']);
  for (const s of ['driver', 'ip', 'tcp', 'udp']) t.equal(j.byServer[s].injected, 6, `6 faults into ${s}`);

  // The SVG, parsed minimally: one well-formed root <svg> element with balanced tags.
  const text = readFileSync(svg, 'utf8');
  t.match(text, /^<\?xml[^>]*\?>\s*<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  t.ok(text.trimEnd().endsWith('</svg>'));
  const stack: string[] = [];
  for (const m of text.replace(/<\?xml[^>]*\?>/, '').matchAll(/<(\/?)([a-zA-Z][\w-]*)([^>]*?)(\/?)>/g)) {
    const [, close, name, , self] = m;
    if (self) continue;
    if (close) t.equal(stack.pop(), name, `</${name}> closes <${name}>`) ;
    else stack.push(name);
  }
  t.same(stack, [], 'every element closed');
  const markers = [...text.matchAll(/<line class="fault fault-(\w+)"/g)].map((m) => m[1]);
  t.equal(markers.length, 24, 'one marker per fault');
  t.same([...new Set(markers)].sort(), ['crash', 'exit', 'hang', 'poison'], 'markers of every kind');
  t.match(text, /class="recovery-histogram"/);
  t.ok([...text.matchAll(/<rect class="bin"/g)].length > 0, 'histogram bins');
  t.match(text, /class="throughput-area"/);
});

t.test('argument errors exit 2 with a message', async (t) => {
  const a = await run(['demo', '--duration', '0']);
  t.equal(a.code, 2);
  t.match(a.stderr, /--duration must be a positive number/);
  const b = await run(['faults', '--count', '3', '--report', 'x.png']);
  t.equal(b.code, 2);
  t.match(b.stderr, /--report must name a \.svg or \.html file/);
  const c = await run(['demo', '--no-such-option']);
  t.equal(c.code, 2);
  t.match(c.stderr, /Unknown option '--no-such-option'/);
});
