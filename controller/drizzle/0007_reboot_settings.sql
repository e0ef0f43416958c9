CREATE TABLE `tag_settings` (
	`tag` text PRIMARY KEY NOT NULL,
	`reboot_policy` text,
	`maintenance_windows` text,
	`max_rebooting` integer,
	`updated_at` integer NOT NULL,
	`updated_by` text NOT NULL
);
--> statement-breakpoint
ALTER TABLE `hosts` ADD `reboot_policy` text;--> statement-breakpoint
ALTER TABLE `hosts` ADD `maintenance_windows` text;