import { readFileSync, statSync } from 'node:fs';
import { KeyFormatError, parseSecretKey, type NamedSecretKey } from '../../shared/src/keys.js';

/**
 * Reads a secret signing key ("name:base64"), refusing one that group or others can access: a key
 * any local account can read signs for whoever reads it. `role` names the key in every message
 * ("controller key", "single-key release key"), so the operator knows which file to fix.
 */
export function readSecretKeyFile(file: string, role: string): NamedSecretKey {
  let text: string;
  let mode: number;
  try {
    mode = statSync(file).mode;
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`cannot read ${role} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if ((mode & 0o077) !== 0) {
    const shown = (mode & 0o777).toString(8).padStart(4, '0');
    throw new Error(`${role} ${file} is readable by group or others (mode ${shown}); refusing to use it. Run: chmod 600 ${file}`);
  }
  try {
    return parseSecretKey(text);
  } catch (error) {
    if (error instanceof KeyFormatError) throw new Error(`${role} ${file}: ${error.message}`);
    throw error;
  }
}
