/**
 * The usage text of every command, apart from the commands themselves: bin/keepnet.ts prints them all
 * but loads only the module of the command it runs (see there why).
 */
export const BENCH_NET_USAGE = `keepnet bench bulk|rr|crr|all [--duration S] [--rounds N] [--warmup S] [--placement dedicated|shared|cohosted] [--mtu N] [--tcp-instances N] [--busy-poll US] [--json] [--svg FILE]`;

export const BENCH_SCALE_USAGE = `keepnet bench scale [--instances 1,2] [--connections K] [--tests bulk,rr] [--duration S] [--warmup S] [--mtu N] [--json]`;

export const BENCH_AB_USAGE = `keepnet bench ab --builds DIR,DIR[,...] [--test rr|bulk] [--slice MS] [--rounds N] [--warmup S] [--json]`;

export const BENCH_TAP_USAGE = `keepnet bench tap [--duration S] [--warmup S] [--placement dedicated|shared] [--offload on|off|both] [--json]`;

export const DEMO_USAGE = `keepnet demo [--duration S] [--both-stacks] [--tcp-instances N] [--plain] [--json]
  (on a terminal: a live view until q or Ctrl-C; otherwise one line per event for 20 s)`;

export const FAULTS_USAGE = `keepnet faults --count N [--servers driver,ip,tcp,udp] [--kinds crash,exit,hang,poison]
               [--placement dedicated|shared] [--tcp-instances N] [--in-flight K] [--back-to-back] [--both-stacks]
               [--no-traffic] [--report FILE.svg|FILE.html] [--json]
  (faults go to stack A, the server side; --both-stacks alternates between A and B, the client side)
  (--in-flight 0: no probe traffic; default 4 probes in flight per server)
  (--no-traffic: one stack and probes only, no HTTP, bulk or UDP traffic)
  (--back-to-back: do not wait for the warm standbys to be parked again between faults)
  (--report: draw throughput over time with the faults marked, and a histogram of recovery times)`;

export const TAP_USAGE = `keepnet tap --dev NAME [--netns NS] --address A.B.C.D/P [--gateway G] [--mtu N] [--pcap FILE]
            [--serve echo,discard,http] [--tcp-instances N] [--offload on|off] [--json]`;
