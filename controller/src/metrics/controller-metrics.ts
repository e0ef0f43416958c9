import { and, asc, count, inArray } from 'drizzle-orm';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ConnectionMode } from '../../../shared/src/operator-api.js';
import { Phase } from '../../../shared/src/protocol.js';
import { RolloutState } from '../../../shared/src/rollout-api.js';
import { WebhookAttemptResult } from '../../../shared/src/webhook-api.js';
import type { Store } from '../db/store.js';
import { newestEventCursor, readEvents, type EventCursor } from '../events-cursor.js';
import type { Presence } from '../hosts/presence.js';
import { DeploymentTimer } from './deployment-timer.js';

export interface MetricsDeps {
  store: Store;
  presence: Presence;
  /** Webhook deliveries waiting to be sent or retried (the webhooks feature counts them). */
  pendingWebhookDeliveries: () => Promise<number>;
  /** Passes of the rollout engine over the advancing rollouts completed so far (it counts them). */
  rolloutEngineTicks: () => number;
  /** Node process metrics (CPU, memory, event loop lag); off in tests, which start many controllers. */
  processMetrics?: boolean;
  /** How long an id skipped over may still appear (events-cursor.ts); tests shorten it. */
  gapGraceMs?: number;
}

// A wave's manifests are logged as rollout-host-issued (one event per host); a rollback's as manifest-issued.
const MANIFEST_CAUSES = { 'desired-set': 'desired-set', 'manifest-issued': 'rollout', 'rollout-host-issued': 'rollout', 'manifest-renewed': 'renewal' } as const;
const COUNTED_KINDS = [...Object.keys(MANIFEST_CAUSES), 'report', 'connected', 'disconnected', 'rollout-halted', 'rollout-rolling-back'];
/** Events folded per query while catching up. */
const BATCH = 5000;

/**
 * The controller's Prometheus metrics, in a registry of its own (several controllers in one
 * process must not share counters). Counters and histograms are folded from the audit log at
 * scrape time, from a cursor set at start: they count what was committed, whoever committed it,
 * with no hooks in the write paths. Gauges are read from the database and presence per scrape.
 */
export class ControllerMetrics {
  readonly registry = new Registry();
  /** Where the fold is in the audit log; set at start (null until the first read of it has answered). */
  private cursor: EventCursor | null = null;
  private readonly started: Promise<void>;
  private readonly timer: DeploymentTimer;
  private readonly hostsByPhase: Gauge<'phase'>;
  private readonly hostsByConnection: Gauge<'mode'>;
  private readonly connectedAgents: Gauge;
  private readonly rolloutsByState: Gauge<'state'>;
  private readonly manifestsIssued: Counter<'cause'>;
  private readonly reportsReceived: Counter<'phase'>;
  private readonly rolloutHalts: Counter;
  private readonly rolloutRollbacks: Counter;
  private readonly wsConnects: Counter;
  private readonly wsDisconnects: Counter;
  private readonly webhookAttempts: Counter<'result'>;
  private readonly webhookPending: Gauge;
  private readonly admissionRefusals: Counter<'what' | 'scope'>;
  private readonly rolloutEngineTicks: Counter;
  private readonly engineLease: Gauge;
  /** The engine's count at the last scrape: the counter grows by the difference. */
  private ticksSeen = 0;

  constructor(private readonly deps: MetricsDeps) {
    const registers = [this.registry];
    if (deps.processMetrics) collectDefaultMetrics({ register: this.registry });
    this.hostsByPhase = new Gauge({ name: 'shoal_hosts', help: 'Hosts by the phase of their latest report ("none": no report yet).', labelNames: ['phase'], registers });
    this.hostsByConnection = new Gauge({ name: 'shoal_hosts_by_connection', help: 'Hosts by how their agent is connected now.', labelNames: ['mode'], registers });
    this.connectedAgents = new Gauge({ name: 'shoal_connected_agents', help: 'Agents with an open websocket to this controller.', registers });
    this.rolloutsByState = new Gauge({ name: 'shoal_rollouts', help: 'Rollouts by state.', labelNames: ['state'], registers });
    this.manifestsIssued = new Counter({ name: 'shoal_manifests_issued_total', help: 'Signed manifests issued, by cause (desired-set, rollout, renewal).', labelNames: ['cause'], registers });
    this.reportsReceived = new Counter({ name: 'shoal_reports_received_total', help: 'Agent reports stored (duplicates not counted), by phase.', labelNames: ['phase'], registers });
    this.rolloutHalts = new Counter({ name: 'shoal_rollout_halts_total', help: 'Rollouts halted by a failure threshold or deadline.', registers });
    this.rolloutRollbacks = new Counter({ name: 'shoal_rollout_rollbacks_total', help: 'Rollouts that began rolling back (on failure or on request).', registers });
    this.wsConnects = new Counter({ name: 'shoal_websocket_connects_total', help: 'Agent websockets authenticated.', registers });
    this.wsDisconnects = new Counter({ name: 'shoal_websocket_disconnects_total', help: 'Agent websockets closed (not counting replaced ones or shutdown).', registers });
    this.webhookAttempts = new Counter({ name: 'shoal_webhook_attempts_total', help: 'Webhook delivery attempts by result (delivered, retry, failed = given up).', labelNames: ['result'], registers });
    this.webhookPending = new Gauge({ name: 'shoal_webhook_deliveries_pending', help: 'Webhook deliveries waiting to be sent or retried.', registers });
    this.admissionRefusals = new Counter({
      name: 'shoal_admission_refused_total',
      help: 'Unauthenticated requests refused by a cap (what: challenge | websocket; scope: address | total).',
      labelNames: ['what', 'scope'],
      registers,
    });
    this.engineLease = new Gauge({
      name: 'shoal_engine_lease_held',
      help: '1 while this replica holds the engine lease and runs the rollout timer, renewals, webhooks and retention; 0 otherwise. Across the replicas it sums to 1.',
      registers,
    });
    this.rolloutEngineTicks = new Counter({
      name: 'shoal_rollout_engine_ticks_total',
      help: 'Passes of the rollout engine over every advancing rollout (deadlines, bakes, offline waits) completed; one that stops growing means only reports move rollouts.',
      registers,
    });
    this.timer = new DeploymentTimer(
      new Histogram({
        name: 'shoal_deployment_duration_seconds',
        help: 'From the first report about a manifest (accepted) to its terminal phase, by result (success, failure).',
        labelNames: ['result'],
        buckets: [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200],
        registers,
      }),
      new Histogram({
        name: 'shoal_phase_duration_seconds',
        help: 'Time a deployment spent in each phase, from one report to the next about the same manifest.',
        labelNames: ['phase'],
        buckets: [0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
        registers,
      }),
    );
    // Every label value known up front, so series exist (at 0) before the first event.
    for (const cause of new Set(Object.values(MANIFEST_CAUSES))) this.manifestsIssued.inc({ cause }, 0);
    for (const phase of Phase.options) this.reportsReceived.inc({ phase }, 0);
    for (const result of WebhookAttemptResult.options) this.webhookAttempts.inc({ result }, 0);
    // Counted from start: history before it belongs to the controller that wrote it.
    this.started = newestEventCursor(deps.store).then((cursor) => {
      this.cursor = cursor;
    });
    // A failure shows at the first scrape, which awaits this again.
    this.started.catch(() => {});
  }

  admissionRefused(what: 'challenge' | 'websocket', scope: 'address' | 'total'): void {
    this.admissionRefusals.inc({ what, scope });
  }

  engineLeaseHeld(held: boolean): void {
    this.engineLease.set(held ? 1 : 0);
  }

  webhookAttempt(result: WebhookAttemptResult): void {
    this.webhookAttempts.inc({ result });
  }

  /** The exposition text, brought up to date first. */
  async scrape(): Promise<string> {
    await this.refresh();
    // prom-client writes NaN as "Nan" (e.g. event-loop lag before its first sample); the format says "NaN".
    return (await this.registry.metrics()).replace(/ Nan$/gm, ' NaN');
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  async refresh(): Promise<void> {
    await this.started;
    await this.foldEvents();
    await this.readGauges();
    const ticks = this.deps.rolloutEngineTicks();
    this.rolloutEngineTicks.inc(ticks - this.ticksSeen);
    this.ticksSeen = ticks;
  }

  private async foldEvents(): Promise<void> {
    const { store } = this.deps;
    const { events } = store.t;
    // Counting does not care about order: events committed out of id order are folded when they appear (events-cursor.ts).
    for (let more = true; more; ) {
      const cursor = this.cursor!;
      const read = await readEvents(store, cursor, {
        batch: BATCH,
        now: Date.now(),
        ...(this.deps.gapGraceMs === undefined ? {} : { graceMs: this.deps.gapGraceMs }),
        rows: (ids, limit) =>
          store.q
            .select({ id: events.id, host: events.host, kind: events.kind, data: events.data })
            .from(events)
            .where(and(ids, inArray(events.kind, COUNTED_KINDS)))
            .orderBy(asc(events.id))
            .limit(limit),
      });
      // Two scrapes at once fold each event once: the one that read from a cursor since replaced folds nothing.
      if (this.cursor !== cursor) return;
      for (const row of read.rows) this.fold(row.kind, row.host, row.data);
      this.cursor = read.cursor;
      more = read.more;
    }
  }

  private fold(kind: string, host: string | null, data: Record<string, unknown>): void {
    if (kind in MANIFEST_CAUSES) return this.manifestsIssued.inc({ cause: MANIFEST_CAUSES[kind as keyof typeof MANIFEST_CAUSES] });
    switch (kind) {
      case 'report': {
        const phase = Phase.safeParse(data.phase);
        if (!phase.success) return;
        this.reportsReceived.inc({ phase: phase.data });
        const version = typeof data.manifestVersion === 'number' ? data.manifestVersion : null;
        if (host !== null) this.timer.report(host, version, phase.data, Date.parse(String(data.reportedAt)));
        return;
      }
      case 'connected':
        return this.wsConnects.inc();
      case 'disconnected':
        return this.wsDisconnects.inc();
      case 'rollout-halted':
        return this.rolloutHalts.inc();
      case 'rollout-rolling-back':
        return this.rolloutRollbacks.inc();
    }
  }

  /** One pass over the hosts table (name, phase) and one grouped query over rollouts. */
  private async readGauges(): Promise<void> {
    const { store, presence } = this.deps;
    const { hosts, rollouts } = store.t;
    const byPhase = new Map<string, number>([...Phase.options, 'none'].map((p) => [p, 0]));
    const byMode = new Map<string, number>(ConnectionMode.options.map((m) => [m, 0]));
    for (const row of await store.q.select({ name: hosts.name, phase: hosts.phase }).from(hosts)) {
      const phase = row.phase ?? 'none';
      byPhase.set(phase, (byPhase.get(phase) ?? 0) + 1);
      const mode = presence.mode(row.name);
      byMode.set(mode, byMode.get(mode)! + 1);
    }
    for (const [phase, n] of byPhase) this.hostsByPhase.set({ phase }, n);
    for (const [mode, n] of byMode) this.hostsByConnection.set({ mode }, n);
    this.connectedAgents.set(byMode.get('websocket')!);

    const states = new Map<string, number>(RolloutState.options.map((s) => [s, 0]));
    for (const row of await store.q.select({ state: rollouts.state, n: count() }).from(rollouts).groupBy(rollouts.state)) {
      states.set(row.state, row.n);
    }
    for (const [state, n] of states) this.rolloutsByState.set({ state }, n);
    this.webhookPending.set(await this.deps.pendingWebhookDeliveries());
  }
}
