import { Poller } from '../../agent/src/agent.js';
import { silentLogger } from '../../shared/src/logger.js';
import { transportCases } from './transport.case.js';

// A long-polling agent without a websocket; the interval is only the pause after a failed poll.
transportCases('polling', ({ client, onEnvelope }) =>
  new Poller({
    client,
    intervalMs: 100,
    waitSeconds: 30,
    shouldPoll: () => true,
    onEnvelope: async (envelope) => onEnvelope(envelope),
    logger: silentLogger(),
  }),
);
