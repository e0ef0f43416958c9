// Host names follow DNS labels (RFC 1123) so that they work as hostnames, tags and URL segments.
const HOST_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const TAG = /^[a-z0-9]([a-z0-9._-]{0,62})$/;

export function isHostName(value: string): boolean {
  return HOST_NAME.test(value);
}

export function isTag(value: string): boolean {
  return TAG.test(value);
}

export const HOST_NAME_RULE = 'lower-case letters, digits and inner hyphens, at most 63 characters';
export const TAG_RULE = 'lower-case letters, digits, ".", "_" and "-", starting with a letter or digit';
