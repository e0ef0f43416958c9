ALTER TABLE `manifests` ADD `statement` text;--> statement-breakpoint
ALTER TABLE `manifests` ADD `statement_floor` integer;--> statement-breakpoint
ALTER TABLE `operator_tokens` ADD `scope` text DEFAULT 'admin' NOT NULL;--> statement-breakpoint
ALTER TABLE `release_hosts` ADD `statement` text;--> statement-breakpoint
ALTER TABLE `release_hosts` ADD `facts` text;--> statement-breakpoint
CREATE INDEX `release_hosts_host_store_path` ON `release_hosts` (`host`,`store_path`);--> statement-breakpoint
ALTER TABLE `releases` ADD `floor` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `releases` ADD `key_id` text;--> statement-breakpoint
ALTER TABLE `releases` ADD `signed_by` text;--> statement-breakpoint
ALTER TABLE `releases` ADD `signed_at` integer;--> statement-breakpoint
ALTER TABLE `releases` ADD `source_revision` text;--> statement-breakpoint
ALTER TABLE `releases` ADD `source_flake_lock_hash` text;