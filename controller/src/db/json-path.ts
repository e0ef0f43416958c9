/**
 * A key of a JSON path written into SQL text (store.jsonText): only the controller's own constant
 * paths reach it, so it is checked to be a plain name rather than escaped.
 */
export function jsonKey(key: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new Error(`JSON path key ${JSON.stringify(key)} is not a plain name`);
  return key;
}
