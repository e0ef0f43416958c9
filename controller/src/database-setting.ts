import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { redactUrl } from './db/pg-connection.js';
import { isPostgresUrl } from './db/store.js';

/**
 * The `database` setting: a SQLite file (the default, controller.sqlite in stateDir) or a
 * PostgreSQL URL whose password may come from `databasePasswordFile`, so that it never has to
 * stand in a config file that is world-readable (the NixOS module's is in the Nix store).
 * The config schema checks the text (databaseProblem); the password file is read only when the
 * controller starts (resolveDatabase), since at build time it exists only on the target host.
 */

export type DatabaseChoice = { kind: 'sqlite'; file: string } | { kind: 'postgres'; url: string };

/** The fields of the controller config this needs (config.ts's ControllerConfig has them). */
export interface DatabaseSettings {
  stateDir: string;
  database: string | null;
  databasePasswordFile: string | null;
  /** The older name of a SQLite `database`. */
  db: string | null;
}

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;

/** "postgres://…", "mysql://…": a URL, not a (relative) path to resolve. */
export function hasScheme(text: string): boolean {
  return SCHEME.test(text);
}

/** What is wrong with a `database` value, or null. Never echoes a URL: it may hold a password. */
export function databaseProblem(text: string): string | null {
  if (text.startsWith('/')) return null;
  if (isPostgresUrl(text)) {
    return URL.canParse(text) ? null : 'is not a valid postgres:// URL';
  }
  const scheme = SCHEME.exec(text)?.[1];
  if (scheme !== undefined) {
    return `unknown scheme "${scheme}:": give a SQLite file as an absolute path, or a postgres:// or postgresql:// URL`;
  }
  return 'must be an absolute path to a SQLite file or a postgres:// or postgresql:// URL';
}

/** The URL's password, if it has one: in its user info, or as the `password` parameter node-postgres also reads. */
export function urlPassword(url: string): string {
  if (!URL.canParse(url)) return '';
  const parsed = new URL(url);
  return parsed.searchParams.get('password') ?? decodeURIComponent(parsed.password);
}

/** redactUrl (the user info's password), and a `password` parameter too. */
function redact(url: string): string {
  const redacted = redactUrl(url);
  if (!URL.canParse(redacted) || !new URL(redacted).searchParams.has('password')) return redacted;
  const parsed = new URL(redacted);
  parsed.searchParams.set('password', '***');
  return parsed.toString();
}

function selected(settings: DatabaseSettings): string {
  return settings.database ?? settings.db ?? join(settings.stateDir, 'controller.sqlite');
}

export type ReadText = (file: string) => string;

/**
 * Which database the controller opens; reads the password file. Throws an Error naming the setting
 * when that file cannot be read or is empty. Expects a config the schema has accepted.
 */
export function resolveDatabase(settings: DatabaseSettings, readText: ReadText = (file) => readFileSync(file, 'utf8')): DatabaseChoice {
  const database = selected(settings);
  if (!isPostgresUrl(database)) return { kind: 'sqlite', file: database };
  if (settings.databasePasswordFile === null) return { kind: 'postgres', url: database };
  const file = settings.databasePasswordFile;
  let text: string;
  try {
    text = readText(file);
  } catch (error) {
    throw new Error(`databasePasswordFile ${file}: cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const password = text.replace(/(\r?\n)+$/, '');
  if (password === '') throw new Error(`databasePasswordFile ${file}: is empty; it must hold the PostgreSQL password`);
  const url = new URL(database);
  // node-postgres decodes the password with decodeURIComponent; the URL setter alone would leave "%" as is.
  url.password = encodeURIComponent(password);
  return { kind: 'postgres', url: url.toString() };
}

/** What openStore (db/store.ts) takes: the SQLite file, or the PostgreSQL URL with its password. */
export function storeConfigFrom(settings: DatabaseSettings, readText?: ReadText): { database: string } {
  const choice = resolveDatabase(settings, readText);
  return { database: choice.kind === 'sqlite' ? choice.file : choice.url };
}

/** For logs and messages: the file, or the URL with its password replaced by ***. */
export function describeDatabase(choice: DatabaseChoice): string {
  return choice.kind === 'sqlite' ? choice.file : redact(choice.url);
}

/** For check-config: what the settings select, without reading the password file (it exists only on the target host). */
export function databaseSummary(settings: DatabaseSettings): string {
  const database = selected(settings);
  if (!isPostgresUrl(database)) return `SQLite ${database}`;
  const password = settings.databasePasswordFile === null ? '' : ` with the password in ${settings.databasePasswordFile}`;
  return `PostgreSQL ${redact(database)}${password}`;
}
