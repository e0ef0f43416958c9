import type { TestProject } from 'vitest/node';
import { startTemplateServer } from './postgres-template.js';

/**
 * vitest globalSetup of the postgres project (vitest.config.ts): one PostgreSQL server with the
 * migrated template for the whole run, handed to every worker; postgresTestDatabase() copies the
 * template for each test controller. Without it each test file would initdb a server of its own.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startTemplateServer();
  project.provide('shoalPostgres', { url: server.url, adminUrl: server.adminUrl });
  return () => server.stop();
}
