import { diagnoseFailure, lastLines } from '../../../shared/src/nix-failure.js';
import type { HostFailure } from '../../../shared/src/operator-api.js';
import type { CommandFailure } from '../../../shared/src/protocol.js';
import type { Paint } from './colour.js';
import { fit } from './format.js';

/** Output lines shown under a failed host: enough to see the error, few enough for a fleet. */
export const TAIL_LINES = 5;

function how(failure: CommandFailure): string {
  if (failure.timedOut) return 'timed out';
  return failure.exitCode !== null ? `exit ${failure.exitCode}` : `signal ${failure.signal ?? '?'}`;
}

/**
 * The lines under a failed host, indented: what it most likely means (when recognised), which
 * command failed, and the last lines that command printed. Each line fits 80 columns.
 */
export function failureBlock(failure: HostFailure | null, paint: Paint, indent = '    ', lines = TAIL_LINES): string[] {
  const command = failure?.failure;
  if (!command) return [];
  const width = 80 - indent.length - 2;
  const out: string[] = [];
  const diagnosis = failure.diagnosis ?? diagnoseFailure(command);
  if (diagnosis) out.push(`${indent}${paint.yellow('→')} ${wrapWords(diagnosis.summary, width).join(`\n${indent}  `)}`);
  out.push(`${indent}${paint.dim(fit(`${command.command} (${how(command)}):`, width + 2).trimEnd())}`);
  // Long lines are broken, not cut: the end of a Nix error line is often the part that matters.
  for (const line of lastLines(command.outputTail, lines)) {
    for (const piece of chunks(line, width)) out.push(`${indent}${paint.dim('│')} ${piece}`.trimEnd());
  }
  return out;
}

function chunks(line: string, width: number): string[] {
  const pieces: string[] = [];
  for (let i = 0; i < line.length; i += width) pieces.push(line.slice(i, i + width));
  return pieces.length > 0 ? pieces : [''];
}

/** Words wrapped at `width`; a word longer than a line (a store path) gets a line of its own. */
export function wrapWords(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/ +/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}
