/** A rollout member as the database row and the API view both have it. */
interface Member {
  host: string;
  state: string;
  previousSystem: string | null;
  targetPath: string;
  rollbackState: string | null;
}

/**
 * What a rollback does with one host of the rollout, decided in one place for the engine and for
 * the question the dashboard asks before it: 'untouched' (never sent the release, or already
 * rolled back), 'unrecoverable' (the system it ran before is unknown), 'unchanged' (it ran the
 * release already), or 'back' to its previous system.
 */
export type RollbackChoice = 'untouched' | 'unrecoverable' | 'unchanged' | 'back';

export function rollbackChoice(member: Member): RollbackChoice {
  if (member.state === 'pending' || member.state === 'skipped' || member.rollbackState !== null) return 'untouched';
  if (!member.previousSystem) return 'unrecoverable';
  if (member.previousSystem === member.targetPath) return 'unchanged';
  return 'back';
}

export interface RollbackPlan {
  /** Hosts that get a new manifest for the system they ran before. */
  back: Array<{ host: string; from: string; to: string }>;
  /** Hosts the release reached whose previous system is unknown: they stay where they are. */
  unrecoverable: string[];
}

export function rollbackPlan(members: Member[]): RollbackPlan {
  const plan: RollbackPlan = { back: [], unrecoverable: [] };
  for (const member of members) {
    const choice = rollbackChoice(member);
    if (choice === 'back') plan.back.push({ host: member.host, from: member.targetPath, to: member.previousSystem! });
    if (choice === 'unrecoverable') plan.unrecoverable.push(member.host);
  }
  return plan;
}
