/** `keepnet faults`: a fault campaign against a live stack under probe traffic (see fault-campaign.ts). */
import { parseArgs } from 'node:util';
import { runFaultCampaign } from '../../kernel-shim/fault-campaign.js';
import type { FaultKind } from '../../servers/runtime/supervisor.js';
import type { ServerName } from '../../servers/runtime/topology.js';
import type { Placement } from '../../servers/runtime/topology.js';

export const FAULTS_USAGE = `keepnet faults --count N [--servers driver,ip,tcp,udp] [--kinds crash,exit,hang,poison]
               [--placement dedicated|shared] [--in-flight K] [--back-to-back] [--json]
  (--in-flight 0: an idle stack, no probe traffic; default 4 probes in flight per server)
  (--back-to-back: do not wait for the warm standbys to be parked again between faults)`;

export async function faultsCommand(args: string[], fail: (msg: string) => never): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      count: { type: 'string' },
      servers: { type: 'string' },
      kinds: { type: 'string' },
      placement: { type: 'string' },
      'in-flight': { type: 'string' },
      'back-to-back': { type: 'boolean' },
      json: { type: 'boolean' },
    },
  });
  const count = Number(values.count ?? '20');
  if (!Number.isInteger(count) || count < 1) fail(`--count must be a positive integer, got '${values.count}'`);
  const servers = values.servers ? (values.servers.split(',') as ServerName[]) : undefined;
  const kinds = values.kinds ? (values.kinds.split(',') as FaultKind[]) : undefined;
  const placement = (values.placement ?? 'dedicated') as Placement;
  if (placement !== 'dedicated' && placement !== 'shared') fail(`--placement must be dedicated or shared`);
  const json = values.json === true;
  const inFlight = Number(values['in-flight'] ?? '4');
  if (!Number.isInteger(inFlight) || inFlight < 0) fail(`--in-flight must be a non-negative integer, got '${values['in-flight']}'`);
  try {
    const result = await runFaultCampaign({
      count,
      servers,
      kinds,
      inFlight,
      rearm: values['back-to-back'] !== true,
      stack: { placement },
      onEvent: json ? undefined : (line) => process.stderr.write(`${line}\n`),
    });
    process.stdout.write(json ? JSON.stringify(result) + '\n' : JSON.stringify(result, null, 2) + '\n');
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_INVALID_ARG_VALUE' || code === 'ERR_OUT_OF_RANGE') fail((err as Error).message);
    throw err;
  }
}
