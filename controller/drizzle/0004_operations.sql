CREATE TABLE `unknown_hosts` (
	`name` text NOT NULL,
	`public_key` text NOT NULL,
	`first_seen_at` integer NOT NULL,
	`last_seen_at` integer NOT NULL,
	`attempts` integer DEFAULT 1 NOT NULL,
	`highest_version` integer,
	`highest_floor` integer,
	PRIMARY KEY(`name`, `public_key`)
);
--> statement-breakpoint
CREATE INDEX `unknown_hosts_last_seen` ON `unknown_hosts` (`last_seen_at`);--> statement-breakpoint
ALTER TABLE `hosts` ADD `agent_version` text;--> statement-breakpoint
ALTER TABLE `rollouts` ADD `retry_of` text;--> statement-breakpoint
ALTER TABLE `webhooks` ADD `dead_since` integer;--> statement-breakpoint
ALTER TABLE `webhooks` ADD `dead_reason` text;--> statement-breakpoint
CREATE INDEX `events_at` ON `events` (`at`);--> statement-breakpoint
CREATE INDEX `reports_received_at` ON `reports` (`received_at`);--> statement-breakpoint
CREATE INDEX `webhook_deliveries_created_at` ON `webhook_deliveries` (`created_at`);