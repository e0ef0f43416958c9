import type { Phase, Report, ReportDetail } from '../../shared/src/protocol.js';
import type { Outbox } from './outbox.js';

export interface ReportInput {
  phase: Phase;
  manifestVersion: number | null;
  storePath: string | null;
  detail?: ReportDetail;
}

/** Makes a report durable in the outbox and returns it (with its seq); delivery happens in the background. */
export type Reporter = (input: ReportInput) => Promise<Report>;

export function createReporter(deps: {
  outbox: Outbox;
  /** Called after each report is on disk, to start delivery. */
  onReport: () => void;
  currentSystem: () => Promise<string | null>;
  clock: () => Date;
}): Reporter {
  return async (input) => {
    const report = await deps.outbox.add({
      at: deps.clock().toISOString(),
      phase: input.phase,
      manifestVersion: input.manifestVersion,
      storePath: input.storePath,
      currentSystem: await deps.currentSystem(),
      detail: input.detail ?? {},
    });
    deps.onReport();
    return report;
  };
}
