import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { generateNamedKey } from '../shared/src/keys.js';
import { RolloutSpec } from '../shared/src/rollout-api.js';
import { systemClock } from '../controller/src/clock.js';
import { openSqliteStore, sqliteWriter } from '../controller/src/db/sqlite-store.js';
import { createDeps } from '../controller/src/deps.js';
import { registerHost } from '../controller/src/hosts/enrollment.js';
import { createManifestSigner } from '../controller/src/manifests/signer.js';
import { releaseTrust } from '../controller/src/manifests/statements.js';
import { startChecked } from '../controller/src/rollouts/checked-start.js';
import { createUnsignedRelease } from '../controller/src/rollouts/releases.js';
import { manifestMessage } from '../controller/src/ws/hub.js';
import { fakeStorePath } from './lib/operator.js';

const count = Number(process.argv[2] ?? 10_000);
const dir = mkdtempSync(join(tmpdir(), 'shoal-wave-'));
const store = openSqliteStore({ database: join(dir, 'c.sqlite') });
const database = sqliteWriter(store);
const singleKey = generateNamedKey('single');
const deps = createDeps({ store, signer: createManifestSigner(generateNamedKey('ctl')), releaseTrust: releaseTrust([], singleKey), clock: systemClock });
const names = Array.from({ length: count }, (_, i) => `host-${i}`);
await store.transaction(async () => {
  for (const name of names) await registerHost(store, systemClock, { name, publicKey: randomBytes(32).toString('base64'), tags: [], actor: 'bench' });
});
const rel = await createUnsignedRelease(store, systemClock, deps.releaseTrust, { name: 'r1', description: '', source: null, hosts: names.map((host) => ({ host, storePath: fakeStorePath(`${host}-v2`) })) }, 'operator:bench');
if (!rel.ok) throw new Error('release');
let published = 0;
let bytes = 0;
let last = 0;
// What the hub does per manifest, without a socket.
deps.bus.onPublish((m) => { bytes += manifestMessage(m).length; published++; last = performance.now(); });
const mainCpuMs = () => { const f = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return (Number(f[11]) + Number(f[12])) * 10; };
const main0 = mainCpuMs();
const cpu0 = process.cpuUsage();
const t0 = performance.now();
// As POST /v1/rollouts does: the cache preflight, then the start.
const out = await startChecked(deps, deps.rollouts, RolloutSpec.parse({ release: 'r1', waves: ['100%'] }), 'operator:bench', false);
if (!out.ok) throw new Error(out.message);
const startMs = performance.now() - t0;
await new Promise<void>((resolve) => { const check = () => (published >= count ? resolve() : setImmediate(check)); check(); });
const cpu = process.cpuUsage(cpu0);
const mainMs = mainCpuMs() - main0;
console.log(JSON.stringify({ count, startMs: Math.round(startMs), allPublishedMs: Math.round(last - t0), cpuMs: Math.round((cpu.user + cpu.system) / 1000), mainThreadCpuMs: mainMs, mbSent: +(bytes / 1e6).toFixed(1) }));
database.close();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
