/** Messages between the benchmark (parent) and a load-generator process (child), over the fork IPC channel. */

/** The keys simulated agents verify with, as real agents do: controller key for assignments, release key for statements. */
export interface FleetTrust {
  releaseKey: string;
  controllerKey: string;
}

export type WorkerCommand =
  /** Each host with the controller (replica) URL it uses. spreadSources: each host connects from a loopback address of its own (127.1.x.y), as a real fleet does. */
  | { cmd: 'init'; hosts: Array<{ name: string; url: string }>; trust: FleetTrust; spreadSources?: boolean }
  | { cmd: 'enroll'; token: string; concurrency: number }
  | { cmd: 'connect'; concurrency: number }
  /** Every host reconnects at once, retrying a 4429 refusal with the real agent's backoff; answers StormResult. */
  | { cmd: 'storm' }
  | { cmd: 'disconnect' }
  | { cmd: 'baseline' }
  | { cmd: 'await-manifests'; timeoutMs: number; skip?: number }
  | { cmd: 'verify' }
  | { cmd: 'report'; phases: string[]; concurrency: number; skip?: number }
  | { cmd: 'poll'; durationMs: number; connections: number; hostCount: number; waitForStart: number }
  | { cmd: 'stats' }
  | { cmd: 'close' };

export interface ManifestTimes {
  /** Wall-clock ms (performance.timeOrigin + now) when each host's newest manifest arrived. */
  receivedAt: number[];
}

export interface VerifyResult {
  /** ms each host spent verifying its manifest as the agent does (verifyManifest with Node's Ed25519). */
  verifyMs: number[];
  /** ms for the same check with tweetnacl, on a sample of the hosts: the portable implementation's price, for comparison. */
  tweetnaclMs: number[];
  invalid: string[];
}

export interface StormResult {
  /** Wall-clock ms from the first connect to the last welcome. */
  elapsedMs: number;
  /** 4429 refusals seen (each followed by a retry). */
  refused: number;
  /** Other failures before the welcome (reset, timeout), each followed by a retry. */
  errors: number;
  failed: number;
}

export interface ReportResult {
  startedAt: number;
  finishedAt: number;
  sent: number;
  stored: number;
  errors: string[];
}

export interface PollResult {
  requests: number;
  byStatus: Record<string, number>;
  latenciesMs: number[];
  elapsedMs: number;
  errors: string[];
}

export type WorkerReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };
