CREATE TABLE `replica_heartbeats` (
	`replica_id` text PRIMARY KEY NOT NULL,
	`seen_at` integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE `hosts` ADD `connected_replica` text;--> statement-breakpoint
ALTER TABLE `hosts` ADD `connection_mode` text;