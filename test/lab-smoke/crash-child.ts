// Helper process for cleanup.test.ts: starts a networked lab with a host running a marked
// sleeper, prints what it made as one JSON line, then waits to be killed without cleaning up.
import { readFileSync } from 'node:fs';
import type { LabFixtures } from '../lab/fixtures.js';
import { Lab } from '../lab/lab.js';

const [fixturesFile, marker] = process.argv.slice(2);
const fixtures = JSON.parse(readFileSync(fixturesFile!, 'utf8')) as LabFixtures;
const lab = await Lab.start({ fixtures, network: true });
const host = await lab.addHost('crash-1');
const sleeper = host.spawn('sleeper', ['/bin/sleep', marker!]);
process.stdout.write(`${JSON.stringify({ dir: lab.dir, netns: host.network!.netns, bridge: lab.bridge!.name, unsharePid: sleeper.pid })}\n`);
setInterval(() => undefined, 60_000);
