import { conditionRank, hostCondition, HOST_CONDITIONS, type HostCondition } from '../../../shared/src/host-condition.js';
import type { HostStatus } from '../../../shared/src/operator-api.js';
import { storePathParts } from './format.js';

/** Rows per page: a page of a 10,000-host fleet stays a few tens of kilobytes. */
export const FLEET_PAGE_SIZE = 100;
const MAX_QUERY_LENGTH = 200;

/** What the fleet page shows, all of it in the query string so a link (or a no-JS form) carries it. */
export interface FleetFilter {
  tag: string | null;
  status: HostCondition | null;
  /** Free text: part of a host name, a tag, or a store path's name. */
  q: string | null;
  /** 1-based. */
  page: number;
}

export function parseFleetFilter(query: Record<string, string>): FleetFilter {
  const tag = query.tag?.trim() || null;
  const status = (HOST_CONDITIONS as readonly string[]).includes(query.status ?? '') ? (query.status as HostCondition) : null;
  const q = query.q?.trim().slice(0, MAX_QUERY_LENGTH) || null;
  const page = Number.parseInt(query.page ?? '', 10);
  return { tag, status, q, page: Number.isSafeInteger(page) && page > 0 ? page : 1 };
}

/** The query string for `filter` with `change` applied; a changed filter starts again at page 1. */
export function fleetQuery(filter: FleetFilter, change: Partial<FleetFilter> = {}): string {
  const next = { ...filter, ...(Object.keys(change).some((key) => key !== 'page') ? { page: 1 } : {}), ...change };
  const params = new URLSearchParams();
  if (next.q) params.set('q', next.q);
  if (next.tag) params.set('tag', next.tag);
  if (next.status) params.set('status', next.status);
  if (next.page > 1) params.set('page', String(next.page));
  const text = params.toString();
  return text ? `?${text}` : '';
}

export function matchesSearch(host: HostStatus, q: string): boolean {
  const needle = q.toLowerCase();
  const haystack = [
    host.name,
    ...host.tags,
    storePathParts(host.currentSystem)?.name ?? '',
    storePathParts(host.desired?.storePath ?? null)?.name ?? '',
  ];
  return haystack.some((text) => text.toLowerCase().includes(needle));
}

export interface FleetRow {
  host: HostStatus;
  condition: HostCondition;
}

export interface FleetView {
  filter: FleetFilter;
  /** Hosts matching tag and search, by condition: the count tiles, so a tile's number is what its link shows. */
  counts: Map<HostCondition, number>;
  total: number;
  /** Hosts matching tag and search (the tiles filter within these). */
  matching: number;
  /** Hosts matching everything, status included. */
  shown: number;
  /** This page's rows, most urgent first. */
  rows: FleetRow[];
  pages: number;
  tags: string[];
}

/** Filters, sorts by urgency (then name) and cuts one page. Pure: the page and the live stream both call it. */
export function fleetView(hosts: HostStatus[], filter: FleetFilter): FleetView {
  const counts = new Map<HostCondition, number>();
  const rows: FleetRow[] = [];
  let matching = 0;
  for (const host of hosts) {
    if (filter.tag && !host.tags.includes(filter.tag)) continue;
    if (filter.q && !matchesSearch(host, filter.q)) continue;
    const condition = hostCondition(host);
    counts.set(condition, (counts.get(condition) ?? 0) + 1);
    matching += 1;
    if (filter.status && condition !== filter.status) continue;
    rows.push({ host, condition });
  }
  rows.sort((a, b) => conditionRank(a.condition) - conditionRank(b.condition) || (a.host.name < b.host.name ? -1 : a.host.name > b.host.name ? 1 : 0));
  const pages = Math.max(1, Math.ceil(rows.length / FLEET_PAGE_SIZE));
  const page = Math.min(filter.page, pages);
  return {
    filter: { ...filter, page },
    counts,
    total: hosts.length,
    matching,
    shown: rows.length,
    rows: rows.slice((page - 1) * FLEET_PAGE_SIZE, page * FLEET_PAGE_SIZE),
    pages,
    tags: [...new Set(hosts.flatMap((host) => host.tags))].sort(),
  };
}
