DROP INDEX `events_rollout_id`;--> statement-breakpoint
CREATE INDEX `events_rollout_id` ON `events` (`rollout_id`,`id`) WHERE "events"."rollout_id" is not null;--> statement-breakpoint
DROP INDEX `rollout_hosts_host_rollback_version`;--> statement-breakpoint
CREATE INDEX `rollout_hosts_host_rollback_version` ON `rollout_hosts` (`host`,`rollback_version`) WHERE "rollout_hosts"."rollback_version" is not null;