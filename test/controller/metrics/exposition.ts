/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4), for tests: it throws,
 * naming the line, on anything the grammar does not allow, and checks the family rules (HELP and
 * TYPE once each, before the family's samples; samples of a family together; histogram buckets
 * cumulative, ending in +Inf equal to _count).
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*';
const LABEL_VALUE = '"(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
const FLOAT = '(?:[+-]?(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][+-]?\\d+)?|[+-]?Inf|NaN)';
const HELP = new RegExp(`^# HELP (${NAME}) ((?:[^\\\\\\n]|\\\\[\\\\n])*)$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
const SAMPLE = new RegExp(`^(${NAME})(\\{(?:${LABEL}=${LABEL_VALUE}(?:,${LABEL}=${LABEL_VALUE})*,?)?\\})? (${FLOAT})(?: (-?\\d+))?$`);
const PAIR = new RegExp(`(${LABEL})=(${LABEL_VALUE})`, 'g');

function parseValue(text: string): number {
  if (/^[+]?Inf$/.test(text)) return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  return Number(text);
}

function familyOf(sampleName: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(sampleName);
  if (direct) return direct;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!sampleName.endsWith(suffix)) continue;
    const family = families.get(sampleName.slice(0, -suffix.length));
    if (family && (family.type === 'histogram' || family.type === 'summary')) return family;
  }
  return undefined;
}

export function parseExposition(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('exposition must end with a newline');
  const families = new Map<string, Family>();
  const helps = new Map<string, string>();
  const closed = new Set<string>();
  let current: Family | null = null;
  text
    .slice(0, -1)
    .split('\n')
    .forEach((line, index) => {
      const where = `line ${index + 1} ${JSON.stringify(line)}`;
      if (line === '') return;
      let match: RegExpExecArray | null;
      if ((match = HELP.exec(line))) {
        if (helps.has(match[1]!)) throw new Error(`${where}: second HELP for ${match[1]}`);
        helps.set(match[1]!, match[2]!);
        return;
      }
      if ((match = TYPE.exec(line))) {
        const name = match[1]!;
        if (families.has(name)) throw new Error(`${where}: second TYPE for ${name}`);
        if (!helps.has(name)) throw new Error(`${where}: TYPE without a HELP before it`);
        if (current) closed.add(current.name);
        current = { name, type: match[2] as Family['type'], help: helps.get(name)!, samples: [] };
        families.set(name, current);
        return;
      }
      if (line.startsWith('#')) {
        if (/^# (HELP|TYPE)\b/.test(line)) throw new Error(`${where}: malformed ${line.split(' ')[1]} line`);
        return;
      }
      if (!(match = SAMPLE.exec(line))) throw new Error(`${where}: not a valid sample line`);
      const family = familyOf(match[1]!, families);
      if (!family) throw new Error(`${where}: sample of a family with no TYPE`);
      if (family !== current || closed.has(family.name)) throw new Error(`${where}: samples of ${family.name} are not together`);
      const labels: Record<string, string> = {};
      for (const pair of (match[2] ?? '').matchAll(PAIR)) {
        if (pair[1]! in labels) throw new Error(`${where}: label ${pair[1]} twice`);
        labels[pair[1]!] = JSON.parse(pair[2]!) as string;
      }
      family.samples.push({ name: match[1]!, labels, value: parseValue(match[3]!) });
    });
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return families;
}

function checkHistogram(family: Family): void {
  const series = new Map<string, Sample[]>();
  const key = (labels: Record<string, string>) =>
    JSON.stringify(Object.entries(labels).filter(([k]) => k !== 'le').sort());
  for (const sample of family.samples) {
    const k = key(sample.labels);
    series.set(k, [...(series.get(k) ?? []), sample]);
  }
  for (const [k, samples] of series) {
    const buckets = samples.filter((s) => s.name === `${family.name}_bucket`);
    const count = samples.find((s) => s.name === `${family.name}_count`);
    if (!samples.some((s) => s.name === `${family.name}_sum`) || !count) throw new Error(`${family.name}${k}: histogram without _sum or _count`);
    if (buckets.some((b) => b.labels.le === undefined)) throw new Error(`${family.name}${k}: bucket without le`);
    const les = buckets.map((b) => parseValue(b.labels.le!));
    if (les.at(-1) !== Infinity) throw new Error(`${family.name}${k}: last bucket is not le="+Inf"`);
    for (let i = 1; i < buckets.length; i++) {
      if (!(les[i]! > les[i - 1]!) || buckets[i]!.value < buckets[i - 1]!.value) throw new Error(`${family.name}${k}: buckets not cumulative`);
    }
    if (buckets.at(-1)!.value !== count.value) throw new Error(`${family.name}${k}: +Inf bucket differs from _count`);
  }
}

/** The value of one sample; undefined when absent. */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const family of families.values()) {
    for (const sample of family.samples) {
      if (sample.name !== name) continue;
      const keys = Object.keys(sample.labels);
      if (keys.length === Object.keys(labels).length && keys.every((k) => sample.labels[k] === labels[k])) return sample.value;
    }
  }
  return undefined;
}
