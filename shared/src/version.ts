/**
 * Shoal's version, as agents report it to the controller when they authenticate (so an operator
 * sees which hosts run an old agent). Kept equal to package.json's by a test.
 */
export const SHOAL_VERSION = '0.1.0';

/** What an agent may say about its version: printable, short. */
export const AGENT_VERSION_RULE = /^[\x21-\x7e]{1,64}$/;
