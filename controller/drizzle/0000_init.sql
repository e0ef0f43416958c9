CREATE TABLE `enrollment_tokens` (
	`id` text PRIMARY KEY NOT NULL,
	`hash` text NOT NULL,
	`expires_at` integer NOT NULL,
	`max_uses` integer,
	`uses` integer DEFAULT 0 NOT NULL,
	`tags` text DEFAULT '[]' NOT NULL,
	`created_at` integer NOT NULL,
	`revoked_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `enrollment_tokens_hash` ON `enrollment_tokens` (`hash`);--> statement-breakpoint
CREATE TABLE `events` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`host` text,
	`at` integer NOT NULL,
	`kind` text NOT NULL,
	`actor` text NOT NULL,
	`data` text NOT NULL,
	FOREIGN KEY (`host`) REFERENCES `hosts`(`name`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `events_host_id` ON `events` (`host`,`id`);--> statement-breakpoint
CREATE TABLE `hosts` (
	`name` text PRIMARY KEY NOT NULL,
	`public_key` text NOT NULL,
	`tags` text DEFAULT '[]' NOT NULL,
	`enrolled_at` integer,
	`last_seen_at` integer,
	`current_system` text,
	`phase` text,
	`reported_version` integer,
	`last_error` text,
	`last_report_seq` integer,
	`desired_version` integer
);
--> statement-breakpoint
CREATE TABLE `manifests` (
	`host` text NOT NULL,
	`version` integer NOT NULL,
	`store_path` text NOT NULL,
	`action` text NOT NULL,
	`rollout_id` text,
	`issued_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`envelope` text NOT NULL,
	PRIMARY KEY(`host`, `version`),
	FOREIGN KEY (`host`) REFERENCES `hosts`(`name`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `operator_tokens` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`hash` text NOT NULL,
	`created_at` integer NOT NULL,
	`revoked_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `operator_tokens_hash` ON `operator_tokens` (`hash`);--> statement-breakpoint
CREATE TABLE `reports` (
	`host` text NOT NULL,
	`seq` integer NOT NULL,
	`received_at` integer NOT NULL,
	`body` text NOT NULL,
	PRIMARY KEY(`host`, `seq`),
	FOREIGN KEY (`host`) REFERENCES `hosts`(`name`) ON UPDATE no action ON DELETE cascade
);
