// A replica reduced to its engine lease, for pg-engine-lease.test.ts: `node --import tsx
// lease-holder.ts <database-url> <replica-id>`. Once it holds the lease it commits one piece of
// fenced work, then starts another that never finishes (engine work in flight), and says so on stdout.
import { openStore } from '../../../controller/src/db/store.js';

const [url, replicaId] = process.argv.slice(2);
if (!url || !replicaId) throw new Error('usage: lease-holder.ts <database-url> <replica-id>');
const store = await openStore({ database: url, replicaId });
const lease = store.engineLease({ pollMs: 100 });
lease.on('acquired', () => {
  console.log('acquired');
  void (async () => {
    await lease.fenced(async (tx) => {
      await tx.insert(store.t.hosts).values({ name: `${replicaId}-committed`, publicKey: 'key' });
    });
    console.log('committed');
    await lease.fenced(async (tx) => {
      await tx.insert(store.t.hosts).values({ name: `${replicaId}-in-flight`, publicKey: 'key' });
      console.log('in-flight');
      await new Promise(() => undefined);
    });
  })();
});
lease.on('lost', (error) => console.log(`lost: ${error.message}`));
lease.start();
console.log('started');
