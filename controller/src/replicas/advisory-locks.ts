// PostgreSQL advisory locks are named by numbers, database-wide: the two-int form with one class
// for Shoal, so that another application using advisory locks in the same database cannot collide.
/** 'Shoa' as an int4. */
export const ADVISORY_CLASS = 0x53686f61;
/** Held while migrating, so replicas starting together migrate one at a time. */
export const MIGRATE_LOCK = 1;
/** Held by the replica that runs the rollout engine. */
export const ENGINE_LOCK = 2;
