import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HostEvent } from '../../../shared/src/operator-api.js';
import { RolloutSpec, RolloutStatus } from '../../../shared/src/rollout-api.js';
import { runCli } from '../../../controller/src/cli/run.js';
import { eventLine } from '../../../controller/src/cli/rollout-format.js';
import './cli-helpers.js';

const ID = 'ro-0123abcd';

const EVENT = HostEvent.parse({
  id: 7,
  host: null,
  rolloutId: ID,
  at: '2025-01-02T03:04:05.000Z',
  kind: 'rollout-aborted',
  actor: 'operator:alice',
  data: { reason: 'aborted by operator:alice' },
});

const FINAL = RolloutStatus.parse({
  id: ID,
  release: 'v42',
  state: 'succeeded',
  reason: null,
  waveIndex: 0,
  wave: 1,
  wavePhase: 'deploying',
  bakeRemainingSeconds: null,
  failureThreshold: { count: 0 },
  failures: 0,
  finished: 0,
  createdAt: '2025-01-02T03:00:00.000Z',
  createdBy: 'operator:alice',
  finishedAt: '2025-01-02T03:04:06.000Z',
  retryOf: null,
  spec: RolloutSpec.parse({ release: 'v42', waves: ['100%'] }),
  waves: [],
});

/** JSON may be split over several `data:` lines: the reader joins them with "\n", which JSON reads as space. */
const dataLines = (value: unknown) =>
  JSON.stringify(value, null, 1)
    .split('\n')
    .map((line) => `data: ${line}\r\n`)
    .join('');

describe('the CLI reading a rollout event stream', () => {
  let server: Server | undefined;
  afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

  it('takes a CRLF split across two chunks as one line end, multi-line data as one message, and skips comments', async () => {
    let stdout = '';
    let stderr = '';
    let printed: () => void = () => {};
    const auditShown = new Promise<void>((resolve) => (printed = resolve));
    const stream = async (res: ServerResponse) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      // The first chunk ends between the CR and the LF of the "event: status" line.
      res.write(`: keep-alive\r\n\r\nevent: audit\r\nid: 7\r\n: a comment inside a message\r\n${dataLines(EVENT)}\r\nevent: status\r`);
      // The CLI printed the audit event, so it has read the first chunk alone.
      await auditShown;
      res.end(`\n${dataLines(FINAL)}\r\n`);
    };
    let requests = 0;
    server = createServer((req, res) => {
      requests += 1;
      if (req.url === `/v1/rollouts/${ID}/stream` && requests === 1) return void stream(res);
      // A reader that lost the final status reconnects; say so instead of streaming again.
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'stream-ended', message: 'the test stream was already served' } }));
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    const code = await runCli(['rollout', 'watch', ID], {
      env: { SHOAL_CONTROLLER: url, SHOAL_TOKEN: 'shoal_op_test' },
      stdout: (text) => {
        stdout += text;
        if (stdout.includes(eventLine(EVENT))) printed();
      },
      stderr: (text) => (stderr += text),
      fetch,
    });

    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(requests).toBe(1);
    const lines = stdout.split('\n');
    expect(lines.slice(0, 2)).toEqual([`watching rollout ${ID}`, eventLine(EVENT)]);
    expect(stdout).toContain(`rollout ${ID} · release v42 · succeeded`);
  });
});
