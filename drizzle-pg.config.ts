import { defineConfig } from 'drizzle-kit';

// The PostgreSQL engine's migrations (issue 16), generated from schema-pg.ts, which derives every
// table from schema.ts: `npx drizzle-kit generate --config drizzle-pg.config.ts` after each schema change.
export default defineConfig({
  dialect: 'postgresql',
  schema: './controller/src/db/schema-pg.ts',
  out: './controller/drizzle-pg',
});
