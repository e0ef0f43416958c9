/**
 * Substituter URLs are Nix store URIs, and a store URI's query can loosen what Nix checks:
 * `?trusted=1` makes Nix take that cache's paths without a valid signature, which would turn
 * "the closure is signed by a trusted cache key" into "the closure came from this URL". Only
 * options that change order and lookups, never trust, are allowed; everything else is refused
 * by the config schema and, should one slip through, by the Nix wrapper before Nix sees it.
 */
export const ALLOWED_SUBSTITUTER_PARAMETERS: readonly string[] = ['priority', 'want-mass-query'];

/** Why `url` must not be passed to Nix as a substituter, or null when it may. */
export function substituterProblem(url: string): string | null {
  // Nix receives the list joined by spaces, so one entry with a space would smuggle in a second URL.
  if (/\s/.test(url)) return `substituter ${JSON.stringify(url)} contains whitespace; list each URL as its own entry`;
  const query = url.indexOf('?');
  if (query < 0) return null;
  // Names are compared decoded (URLSearchParams), so "%74rusted=1" is caught as "trusted".
  for (const name of new URLSearchParams(url.slice(query + 1)).keys()) {
    if (!ALLOWED_SUBSTITUTER_PARAMETERS.includes(name)) {
      return (
        `substituter ${JSON.stringify(url)} has the parameter ${JSON.stringify(name)}; only ${ALLOWED_SUBSTITUTER_PARAMETERS.join(' and ')} are allowed, ` +
        `since other store options (such as trusted=1) can make Nix accept paths without a trusted signature`
      );
    }
  }
  return null;
}

export class UnsafeSubstituterError extends Error {
  override readonly name = 'UnsafeSubstituterError';
}

/** Throws for the first substituter that must not reach Nix: a bug or a bypassed config check, never an expected input. */
export function assertSafeSubstituters(urls: readonly string[]): void {
  for (const url of urls) {
    const problem = substituterProblem(url);
    if (problem !== null) throw new UnsafeSubstituterError(problem);
  }
}
