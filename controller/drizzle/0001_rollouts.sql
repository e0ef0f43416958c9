CREATE TABLE `release_hosts` (
	`release` text NOT NULL,
	`host` text NOT NULL,
	`store_path` text NOT NULL,
	PRIMARY KEY(`release`, `host`),
	FOREIGN KEY (`release`) REFERENCES `releases`(`name`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`host`) REFERENCES `hosts`(`name`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `releases` (
	`name` text PRIMARY KEY NOT NULL,
	`description` text NOT NULL,
	`source` text,
	`created_at` integer NOT NULL,
	`created_by` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `rollout_hosts` (
	`rollout_id` text NOT NULL,
	`host` text NOT NULL,
	`wave` integer NOT NULL,
	`position` integer NOT NULL,
	`target_path` text NOT NULL,
	`previous_system` text,
	`state` text NOT NULL,
	`manifest_version` integer,
	`issued_at` integer,
	`accepted_at` integer,
	`finished_at` integer,
	`reason` text,
	`rollback_state` text,
	`rollback_version` integer,
	`rollback_issued_at` integer,
	PRIMARY KEY(`rollout_id`, `host`),
	FOREIGN KEY (`rollout_id`) REFERENCES `rollouts`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`host`) REFERENCES `hosts`(`name`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `rollout_hosts_host_version` ON `rollout_hosts` (`host`,`manifest_version`);--> statement-breakpoint
CREATE INDEX `rollout_hosts_host_rollback_version` ON `rollout_hosts` (`host`,`rollback_version`);--> statement-breakpoint
CREATE TABLE `rollouts` (
	`id` text PRIMARY KEY NOT NULL,
	`release` text NOT NULL,
	`spec` text NOT NULL,
	`plan` text NOT NULL,
	`state` text NOT NULL,
	`wave_index` integer NOT NULL,
	`wave_phase` text NOT NULL,
	`wave_started_at` integer,
	`bake_started_at` integer,
	`paused_at` integer,
	`approved_through` integer DEFAULT -1 NOT NULL,
	`reason` text,
	`created_at` integer NOT NULL,
	`created_by` text NOT NULL,
	`updated_at` integer NOT NULL,
	`finished_at` integer,
	FOREIGN KEY (`release`) REFERENCES `releases`(`name`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `rollouts_state` ON `rollouts` (`state`);--> statement-breakpoint
ALTER TABLE `events` ADD `rollout_id` text;--> statement-breakpoint
CREATE INDEX `events_rollout_id` ON `events` (`rollout_id`,`id`);