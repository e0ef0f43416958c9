import { readFile } from 'node:fs/promises';

export type JsonFileResult = { ok: true; raw: unknown } | { ok: false; message: string };

/** Reads a JSON configuration file; a failure names the file and what went wrong with it. */
export async function readJsonConfig(file: string): Promise<JsonFileResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    return { ok: false, message: `config ${file}: cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` };
  }
  try {
    return { ok: true, raw: JSON.parse(text) as unknown };
  } catch (error) {
    return { ok: false, message: `config ${file}: not valid JSON: ${(error as Error).message}` };
  }
}
