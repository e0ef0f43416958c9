import type { CliIo } from './context.js';

export interface Paint {
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  dim(text: string): string;
  bold(text: string): string;
}

const plain = (text: string) => text;
const sgr = (code: number, reset: number) => (text: string) => `\x1b[${code}m${text}\x1b[${reset}m`;

/** Colour only on a terminal, and never when NO_COLOR is set to anything (https://no-color.org). */
export function paint(io: CliIo): Paint {
  const on = io.isTTY === true && !io.env.NO_COLOR && io.env.TERM !== 'dumb';
  if (!on) return { red: plain, green: plain, yellow: plain, dim: plain, bold: plain };
  return { red: sgr(31, 39), green: sgr(32, 39), yellow: sgr(33, 39), dim: sgr(2, 22), bold: sgr(1, 22) };
}

/** Printable width of text that may contain colour codes. */
export function visibleLength(text: string): number {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[\d+m/g, '').length;
}
