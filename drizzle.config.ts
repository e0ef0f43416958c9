import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'sqlite',
  schema: './controller/src/db/schema.ts',
  out: './controller/drizzle',
});
