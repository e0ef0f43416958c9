import { WsTransport } from '../../agent/src/ws.js';
import { tweetnaclEd25519 } from '../../shared/src/ed25519.js';
import { silentLogger } from '../../shared/src/logger.js';
import { transportCases } from './transport.case.js';

transportCases('websocket', ({ url, host, identity, client, onEnvelope }) =>
  new WsTransport({
    controllerUrl: url,
    host,
    identity,
    ed25519: tweetnaclEd25519,
    logger: silentLogger(),
    onManifest: (envelope) => onEnvelope(envelope),
    // The session from the welcome serves HTTP calls too, as in the daemon.
    onWelcome: (session) => client.useSession(session),
    initialBackoffMs: 50,
    maxBackoffMs: 200,
  }),
);
