import type { WorkerCommand, WorkerReply } from './protocol.js';
import { SimAgents } from './sim-agents.js';

/** A load-generator process: simulated agents driven by the benchmark over the IPC channel. */
let agents: SimAgents | null = null;

function need(): SimAgents {
  if (!agents) throw new Error('init first');
  return agents;
}

async function handle(message: WorkerCommand): Promise<unknown> {
  switch (message.cmd) {
    case 'init':
      agents = new SimAgents(message.hosts, message.trust, message.spreadSources ?? false);
      return null;
    case 'enroll':
      return need().enroll(message.token, message.concurrency);
    case 'connect':
      return need().connect(message.concurrency);
    case 'storm':
      return need().storm();
    case 'disconnect':
      return need().disconnect();
    case 'baseline':
      need().markBaseline();
      return null;
    case 'await-manifests': {
      const receivedAt = await need().awaitManifests(message.timeoutMs, message.skip ?? 0);
      return { receivedAt };
    }
    case 'verify':
      return need().verify();
    case 'report':
      return need().report(message.phases, message.concurrency, message.skip ?? 0);
    case 'poll':
      return need().poll(message.durationMs, message.connections, message.hostCount, message.waitForStart);
    case 'stats':
      return { rssMb: process.memoryUsage().rss / 1048576 };
    case 'close':
      agents?.closeAll();
      setTimeout(() => process.exit(0), 50);
      return null;
  }
}

process.on('message', (raw: { id: number; command: WorkerCommand }) => {
  handle(raw.command).then(
    (value) => process.send!({ id: raw.id, ok: true, value } satisfies WorkerReply),
    (error: unknown) => process.send!({ id: raw.id, ok: false, error: (error as Error).stack ?? String(error) } satisfies WorkerReply),
  );
});
process.on('disconnect', () => process.exit(0));
