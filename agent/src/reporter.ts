import type { Phase, Report, ReportDetail } from '../../shared/src/protocol.js';
import type { NewReport, Outbox } from './outbox.js';
import { isNoSpace } from './storage.js';

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
  /** The disk is full: free what can be freed (the space reserve); true when a retry may fit. */
  onNoSpace?: () => Promise<boolean>;
}): Reporter {
  return async (input) => {
    const report: NewReport = {
      at: deps.clock().toISOString(),
      phase: input.phase,
      manifestVersion: input.manifestVersion,
      storePath: input.storePath,
      currentSystem: await deps.currentSystem(),
      detail: input.detail ?? {},
    };
    let added: Report;
    try {
      added = await deps.outbox.add(report);
    } catch (error) {
      if (!isNoSpace(error) || !deps.onNoSpace || !(await deps.onNoSpace())) throw error;
      added = await deps.outbox.add(report);
    }
    deps.onReport();
    return added;
  };
}
