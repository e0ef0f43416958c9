import { storePathParts } from './format.js';

/** A system as an operator recognises it: its name and short hash (the whole path on hover), and the manifest version when given. */
export function Generation(props: { path: string | null; version?: number | undefined }) {
  const parts = storePathParts(props.path);
  if (!parts) return <span class="muted">none</span>;
  return (
    <span class="gen" title={props.path ?? ''}>
      {parts.name} <span class="mono">{parts.hash}</span>
      {props.version !== undefined ? <span class="muted"> v{props.version}</span> : null}
    </span>
  );
}
