/**
 * `keepnet faults`: a fault campaign against two live stacks under real traffic (HTTP downloads and
 * uploads verified by SHA-256, long-lived bulk echo connections, UDP echoes, probes); see
 * kernel-shim/fault-campaign.ts. Faults go to stack A (the server side) unless --both-stacks.
 */
import { parseArgs } from 'node:util';
import { FaultCampaign } from '../../kernel-shim/fault-campaign.js';
import type { FaultKind } from '../../servers/runtime/supervisor.js';
import type { ServerName } from '../../servers/runtime/topology.js';
import type { Placement } from '../../servers/runtime/topology.js';
import { writeReport } from '../demo/report.js';
import { tcpInstancesOption } from './options.js';

export async function faultsCommand(args: string[], fail: (msg: string) => never): Promise<void> {
  const { values } = parseOrFail(fail, () => parseArgs({
    args,
    options: {
      count: { type: 'string' },
      servers: { type: 'string' },
      kinds: { type: 'string' },
      placement: { type: 'string' },
      'tcp-instances': { type: 'string' },
      'in-flight': { type: 'string' },
      'back-to-back': { type: 'boolean' },
      'both-stacks': { type: 'boolean' },
      'no-traffic': { type: 'boolean' },
      report: { type: 'string' },
      json: { type: 'boolean' },
    },
  }));
  const count = Number(values.count ?? '20');
  if (!Number.isInteger(count) || count < 1) fail(`--count must be a positive integer, got '${values.count}'`);
  const servers = values.servers ? (values.servers.split(',') as ServerName[]) : undefined;
  const kinds = values.kinds ? (values.kinds.split(',') as FaultKind[]) : undefined;
  const placement = (values.placement ?? 'dedicated') as Placement;
  if (placement !== 'dedicated' && placement !== 'shared') fail(`--placement must be dedicated or shared`);
  const tcpInstances = tcpInstancesOption(values['tcp-instances'], fail);
  const json = values.json === true;
  const inFlight = Number(values['in-flight'] ?? '4');
  if (!Number.isInteger(inFlight) || inFlight < 0) fail(`--in-flight must be a non-negative integer, got '${values['in-flight']}'`);
  const report = values.report;
  if (report !== undefined && !/\.(svg|html?)$/i.test(report)) fail(`--report must name a .svg or .html file, got '${report}'`);
  if (report !== undefined && values['no-traffic']) fail(`--report draws the traffic: it cannot go with --no-traffic`);
  const stamp = ((t0) => (): string => `[${((performance.now() - t0) / 1000).toFixed(3).padStart(8)}s]`)(performance.now());
  try {
    const campaign = new FaultCampaign({
      count,
      servers,
      kinds,
      inFlight,
      rearm: values['back-to-back'] !== true,
      targets: values['both-stacks'] ? 'both' : 'a',
      traffic: values['no-traffic'] ? false : {},
      stack: tcpInstances === 1 ? { placement } : { placement, tcpInstances },
      onEvent: json ? undefined : (line) => process.stderr.write(`${stamp()} ${line}\n`),
    });
    const result = await campaign.run();
    if (report !== undefined) {
      await writeReport(report, campaign.timeline(), result);
      if (!json) process.stderr.write(`report written to ${report}\n`);
    }
    process.stdout.write(json ? JSON.stringify(result) + '\n' : JSON.stringify(result, null, 2) + '\n');
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_INVALID_ARG_VALUE' || code === 'ERR_OUT_OF_RANGE') fail((err as Error).message);
    throw err;
  }
}

/** util.parseArgs, with its errors (unknown option, missing value) as a usage error: exit 2. */
function parseOrFail<T>(fail: (msg: string) => never, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    return fail((err as Error).message);
  }
}
